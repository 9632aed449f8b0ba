"""The development inbox: a webhook receiver of the API's own (`POST /dev/inbox/{name}`, DEV_INBOX),
so a first webhook under `make run` has somewhere to arrive and something to show.

`receive` records one request (signature checked against WEBHOOK_SIGNING_SECRET with our own
verifier, transports/signing.py); `inboxes` and `requests` are what every reader gets (the API,
hence the CLI, and the dashboard), headers and query already redacted (domain/redaction.py).
The bounds live in storage/inbox.py; its types are re-exported here, so the API needs no storage import.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

import msgspec

from queue_system.domain.redaction import redact_headers, redact_url
from queue_system.errors import InvalidInput
from queue_system.storage import inbox
from queue_system.storage.inbox import INBOX_CAP as INBOX_CAP
from queue_system.storage.inbox import AsyncInboxStore
from queue_system.storage.inbox import InboxRequest as InboxRequest
from queue_system.storage.inbox import InboxSummary as InboxSummary
from queue_system.transports.signing import verify

NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z", re.ASCII)
NAME_RULE = "1-64 characters of A-Z a-z 0-9 _ -"
WEBHOOK_ID_PREFIX = "msg_"  # transports/signing.webhook_id


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise InvalidInput(f"an inbox name is {NAME_RULE}", field="name")
    return name


def signature_state(headers: dict[str, str], body: bytes, keys: Sequence[bytes], now: float) -> str:
    if "webhook-signature" not in headers:
        return "unsigned"
    if not keys:
        return "unchecked"
    return "verified" if verify(headers, body, keys, now) else "invalid"


class DevInbox:
    """The inbox's reads and writes over its store (storage/inbox.py `AsyncInboxStore`, built by
    api/app.py): the API's routes and the dashboard's page get this, never the store."""

    def __init__(self, store: AsyncInboxStore) -> None:
        self._store = store

    async def receive(
        self,
        name: str,
        *,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        signing_keys: Sequence[bytes],
    ) -> InboxRequest:
        now = time.time()
        lowered = {k.lower(): v for k, v in headers}
        webhook_id = lowered.get("webhook-id", "")
        request = InboxRequest(
            received_at=int(now * 1000),
            method=method,
            path=path,
            headers=[(k, v[: inbox.MAX_HEADER_VALUE]) for k, v in headers[: inbox.MAX_HEADERS]],
            body=body[: inbox.MAX_BODY_BYTES].decode("utf-8", errors="replace"),
            body_bytes=len(body),
            truncated=len(body) > inbox.MAX_BODY_BYTES,
            signature=signature_state(lowered, body, signing_keys, now),
            task_id=webhook_id.removeprefix(WEBHOOK_ID_PREFIX)
            if webhook_id.startswith(WEBHOOK_ID_PREFIX)
            else None,
        )
        await self._store.store(check_name(name), request)
        return request

    async def inboxes(self) -> list[InboxSummary]:
        return await self._store.names()

    async def requests(self, name: str, limit: int = INBOX_CAP) -> list[InboxRequest]:
        return [shown(r) for r in await self._store.read(check_name(name), limit)]


def shown(request: InboxRequest) -> InboxRequest:
    """A request as every reader shows it: credential headers and query parameters redacted."""
    headers = [(k, str(redact_headers({k: v})[k])) for k, v in request.headers]
    return msgspec.structs.replace(request, headers=headers, path=redact_url(request.path))
