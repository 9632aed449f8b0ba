"""Request ids: every response carries `X-Request-ID`, problem bodies carry it as `request_id`, and
the log lines of a failed request name it, so a client's report leads to the server's log line.

The id is the client's own `X-Request-ID` when it is usable (1-128 visible ASCII characters: it
goes into log lines and a response header, so no spaces, no control characters), else a fresh
uuid4 hex. It is made on first use (`request_id`) and kept in the scope's state; `add_header` is
the app's `before_send` hook, outside every middleware and exception handler, so refusals, 404s
and 500s carry it too.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from litestar.types import Message, Scope

HEADER = "X-Request-ID"
_RAW_HEADER = HEADER.lower().encode()
_USABLE = re.compile(rb"[\x21-\x7e]{1,128}")
_STATE_KEY = "request_id"


def request_id(scope: Scope) -> str:
    state: dict[str, Any] = scope.setdefault("state", {})
    rid: str | None = state.get(_STATE_KEY)
    if rid is None:
        rid = _presented(scope) or uuid.uuid4().hex
        state[_STATE_KEY] = rid
    return rid


def _presented(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == _RAW_HEADER:
            return value.decode("ascii") if _USABLE.fullmatch(value) else None
    return None


async def add_header(message: Message, scope: Scope) -> None:
    """`before_send` hook: `X-Request-ID` on the start of every HTTP response."""
    if message["type"] == "http.response.start":
        headers = list(message.get("headers") or ())
        headers.append((_RAW_HEADER, request_id(scope).encode()))
        message["headers"] = headers
