"""The app's request class: a body that cannot be decoded is the client's error (400 naming the
cause), never a 500.

Litestar turns malformed JSON into a 400 itself, but lets a `UnicodeDecodeError` escape from
msgspec's decoder (invalid UTF-8 inside a JSON string) and from its multipart parser (a field that
is not UTF-8): every route that reads a body (tasks, the compatibility aliases, the dashboard's
forms) reads it through here.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import FormMultiDict

from queue_system.errors import InvalidInput


def _undecodable(exc: UnicodeDecodeError) -> InvalidInput:
    bad = exc.object[exc.start : exc.start + 1].hex()
    return InvalidInput(f"not valid UTF-8 ({exc.reason}: byte 0x{bad})", field="body", status_code=400)


class BodyRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        try:
            return await super().json()
        except UnicodeDecodeError as exc:
            raise _undecodable(exc) from None

    async def form(self) -> FormMultiDict:
        try:
            return await super().form()
        except UnicodeDecodeError as exc:
            raise _undecodable(exc) from None
