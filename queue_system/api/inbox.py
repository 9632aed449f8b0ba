"""The development inbox's routes (DEV_INBOX; `make run` turns it on in development, never production):

    POST|PUT|PATCH|DELETE|GET /dev/inbox/{name}  the receiver: records the request, answers 200 at once
                                                 (open, like any webhook receiver: no key)
    GET /api/v1/dev/inbox                        the inboxes, most recently used first (behind the key check)
    GET /api/v1/dev/inbox/{name}                 an inbox's requests, newest first, headers redacted

The name is 1-64 of `A-Z a-z 0-9 _ -` (422 naming `name`); a body over MAX_REQUEST_BYTES is a 413.
HEAD and OPTIONS are not recorded (Litestar answers OPTIONS itself; a HEAD webhook gets a 405).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Router, get, route
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter

from queue_system.api.openapi import GUARDED_READ, responses
from queue_system.api.schemas import rfc3339
from queue_system.service.inbox import INBOX_CAP, DevInbox, InboxRequest

MAX_REQUEST_BYTES = 256 * 1024
RECEIVER_PATH = "/dev/inbox"
API_PATH = "/api/v1/dev/inbox"
Inbox = NamedDependency[DevInbox]  # the app's `dev_inbox` dependency (api/app.py)


class Received(msgspec.Struct):
    inbox: str
    signature: str  # verified, invalid, unsigned, unchecked (no WEBHOOK_SIGNING_SECRET)


class InboxRequestOut(msgspec.Struct):
    received_at: str
    method: str
    path: str  # with the query string, secret-looking parameters redacted
    headers: list[list[str]]  # [name, value] in order; credentials `[redacted]`
    body: str  # the first 16 KiB, as UTF-8
    body_bytes: int
    truncated: bool
    signature: str  # verified, invalid (no entry matches WEBHOOK_SIGNING_SECRET), unsigned, unchecked
    task_id: str | None  # the delivering task (from `webhook-id`)


class InboxOut(msgspec.Struct):
    name: str
    items: list[InboxRequestOut]  # newest first


class InboxSummaryOut(msgspec.Struct):
    name: str
    requests: int
    last_received_at: str


class InboxesOut(msgspec.Struct):
    items: list[InboxSummaryOut]  # most recently used first


def request_out(r: InboxRequest) -> InboxRequestOut:
    return InboxRequestOut(
        received_at=rfc3339(r.received_at) or "",
        method=r.method,
        path=r.path,
        headers=[[k, v] for k, v in r.headers],
        body=r.body,
        body_bytes=r.body_bytes,
        truncated=r.truncated,
        signature=r.signature,
        task_id=r.task_id,
    )


@route(
    f"{RECEIVER_PATH}/{{name:str}}",
    http_method=["POST", "PUT", "PATCH", "DELETE", "GET"],
    status_code=200,
    tags=["dev"],
    summary="The development inbox's receiver: records any request (DEV_INBOX)",
    request_max_body_size=MAX_REQUEST_BYTES,
    responses=responses(413, 422, 503),
)
async def receive(
    name: FromPath[str],
    request: Request[Any, Any, Any],
    dev_inbox: Inbox,
    signing: NamedDependency[tuple[bytes, ...]],
) -> Received:
    query = request.scope.get("query_string", b"").decode("latin-1")
    recorded = await dev_inbox.receive(
        name,
        method=request.method,
        path=request.url.path + (f"?{query}" if query else ""),
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]],
        body=await request.body(),
        signing_keys=signing,
    )
    return Received(inbox=name, signature=recorded.signature)


@get(API_PATH, tags=["dev"], summary="The development inboxes", responses=responses(503, guard=GUARDED_READ))
async def list_inboxes(dev_inbox: Inbox) -> InboxesOut:
    found = await dev_inbox.inboxes()
    return InboxesOut(
        items=[InboxSummaryOut(s.name, s.requests, rfc3339(s.last_received_at) or "") for s in found]
    )


@get(
    f"{API_PATH}/{{name:str}}",
    tags=["dev"],
    summary="A development inbox's requests, newest first",
    responses=responses(422, 503, guard=GUARDED_READ),
)
async def show_inbox(
    name: FromPath[str],
    dev_inbox: Inbox,
    limit: Annotated[int, QueryParameter(ge=1, le=INBOX_CAP, description=f"at most {INBOX_CAP}")] = INBOX_CAP,
) -> InboxOut:
    found = await dev_inbox.requests(name, limit)
    return InboxOut(name=name, items=[request_out(r) for r in found])


def inbox_router(signing_keys: tuple[bytes, ...]) -> Router:
    """The inbox's routes; the receiver verifies signatures with `signing_keys` (WEBHOOK_SIGNING_SECRET)."""
    return Router(
        path="/",
        route_handlers=[receive, list_inboxes, show_inbox],
        dependencies={"signing": Provide(lambda: signing_keys, sync_to_thread=False)},
    )
