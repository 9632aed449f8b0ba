"""Browser protections on every response (`security_headers`, the app's `before_send` hook).

Every response: `X-Content-Type-Options: nosniff` (a body is what its Content-Type says, never
sniffed into HTML or script), `X-Frame-Options: DENY` and `Referrer-Policy: no-referrer`.
The dashboard's pages, fragments, static files and redirects also carry a Content-Security-Policy
that allows scripts, styles and requests from the dashboard's own origin only: no inline script,
no inline event handler, no `eval` (htmx's `hx-on` and `js:` values are not used, and its
`allowEval` is off), no inline style (htmx's indicator styles are off), no framing
(`frame-ancestors 'none'`), forms posting only to itself. The OpenAPI pages under /schema load
Swagger UI from a CDN with inline script, so they get the three headers but not the CSP.

A `before_send` hook rather than Litestar's `response_headers` or a middleware: those miss the
responses that exception handlers and the router build (403, problems, a 404 for no route), and
the headers must be on those too; the hook sees every message the app sends.
"""

from __future__ import annotations

from litestar.types import Message, Scope

DASHBOARD_PREFIX = "/dashboard"

DASHBOARD_CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)

EVERY_RESPONSE: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
DASHBOARD: dict[str, str] = {**EVERY_RESPONSE, "Content-Security-Policy": DASHBOARD_CSP}


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


_EVERY_RAW = _raw(EVERY_RESPONSE)
_DASHBOARD_RAW = _raw(DASHBOARD)


async def security_headers(message: Message, scope: Scope) -> None:
    """`before_send`: the headers above on the start of every HTTP response, whoever built it.
    A coroutine on purpose: Litestar runs a sync hook in a thread pool, twice per request."""
    if message["type"] == "http.response.start":
        extra = _DASHBOARD_RAW if scope["path"].startswith(DASHBOARD_PREFIX) else _EVERY_RAW
        message["headers"] = [*message.get("headers", ()), *extra]
