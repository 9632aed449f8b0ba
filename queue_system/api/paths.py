"""`refuse_ambiguous_paths`: a path segment that decodes to something other than one segment is a 404.

The ASGI server decodes the path before Litestar routes it (`scope["path"]`), and Litestar then
splits it on `/` and drops empty segments. So `GET /api/v1/tasks/a%2F` was `GET /api/v1/tasks/a/`,
task `a`, and `POST /api/v1/tasks/a%2Fcancel` was the cancel route of `a`: one segment the client
sent became two, or none. No id, name or route segment contains `/` (service/tasks.py
`check_client_id`), so such a path never means a record and is refused before routing, whatever
the route, looking at the bytes the client sent (`scope["raw_path"]`):

- an encoded slash, `%2F` or `%2f`;
- a segment that decodes to `.` or `..` (`%2e`, `%2E%2E`, or plain): no id is one (clients and
  proxies resolve them, each its own way), so it can only be an attempt to climb;
- an encoded NUL, `%00`: C code on the way (a proxy, a log reader) may end the path there;
- a `scope["path"]` that is not what `raw_path` decodes to (a server or proxy that decoded twice,
  so `%252F` became `/`): Litestar would route on something the client did not send.

What decodes to itself is left to the routes: `%252F` is the id `%2F`, `\\`, `;`, U+2215 and U+FF0F
are characters of the segment (none is in any id, so they reach no record: a 404 from the route).
A plain trailing slash keeps working (`/api/v1/tasks/a/` is task `a`), as Litestar does. A server
that gives no `raw_path` (it is optional in ASGI) is not checked; uvicorn gives it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from litestar import Request
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from queue_system.api.problems import problem

_DOTS = frozenset({".", ".."})


def ambiguity(raw_path: bytes, path: str) -> str | None:
    """Why the request target `raw_path` (its query, if any, is ignored) must not be routed as
    `path`, or None if it may be."""
    raw = raw_path.partition(b"?")[0]
    if b"%" not in raw and b"/." not in raw:  # the common case, checked in bytes
        return None
    lowered = raw.lower()
    if b"%2f" in lowered:
        return "an encoded slash (%2F) in a path names no record: no id contains `/`"
    if b"%00" in lowered:
        return "an encoded NUL (%00) in a path names no record"
    text = raw.decode("latin-1")  # any bytes; what is not ASCII is not a `%`, `/` or `.`
    if any(unquote(segment) in _DOTS for segment in text.split("/")):
        return "a `.` or `..` path segment (encoded or not) names no record"
    if unquote(text) != path:
        return "the path was decoded more than once on its way here: send each segment encoded once"
    return None


def refuse_ambiguous_paths(app: ASGIApp) -> ASGIApp:
    """Wraps the whole app (outside its router): an ambiguous path is a 404 problem, never routed."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        raw_path = scope.get("raw_path") if scope["type"] == ScopeType.HTTP else None
        reason = ambiguity(raw_path, scope["path"]) if raw_path else None
        if reason is None:
            await app(scope, receive, send)
            return
        request: Request[Any, Any, Any] = Request(scope, receive)
        response = problem(request, 404, "not-found", reason)
        await response.to_asgi_response(None, request)(scope, receive, send)

    return guarded
