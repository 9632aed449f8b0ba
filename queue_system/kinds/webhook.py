"""The `webhook` kind: one HTTP request per attempt, retried at a fixed interval until a deadline.

The payload is checked at submit time (URL, method, header names). The worker sends the request
`build_request` makes on its event loop (many in flight per process: worker/delivery_loop.py);
the handler sends the same request through the shared `httpx.Client` (`transports/http.py`), for
a runner without a loop. Both classify the outcome the same way.
"""

from __future__ import annotations

import functools
from typing import Any

import httpx
import msgspec

from queue_system.domain.models import AttemptResult
from queue_system.errors import InvalidInput
from queue_system.kinds.registry import RunContext, fixed_policy, task_kind
from queue_system.transports.http import WebhookRequest, send

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class Webhook(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    method: str = "POST"
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    # A string is sent as is; any other JSON value is sent encoded, as application/json.
    body: str | dict[str, Any] | list[Any] | int | float | bool | None = None


@functools.lru_cache(maxsize=4096)
def _url_problem(url: str) -> str | None:
    """Why httpx (the sender) cannot use this URL, or None. Cached: parsing costs ~9 us, and a
    queue's webhooks go to a handful of endpoints."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return str(exc)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return "must be an absolute http:// or https:// URL"
    return None


def check_webhook(hook: Webhook) -> Webhook:
    problem = _url_problem(hook.url)
    if problem:
        raise InvalidInput(problem, field="url")
    method = hook.method.upper()
    if method not in METHODS:
        raise InvalidInput(f"must be one of {', '.join(sorted(METHODS))}", field="method")
    for name, value in hook.headers.items():
        if not name or any(c in name for c in " \t\r\n:") or "\r" in value or "\n" in value:
            raise InvalidInput(f"invalid header {name!r}", field=f"headers.{name}")
    hook.method = method
    return hook


def _content(hook: Webhook) -> tuple[bytes | None, dict[str, str]]:
    headers = dict(hook.headers)
    if hook.body is None:
        return None, headers
    if isinstance(hook.body, str):
        return hook.body.encode(), headers
    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    return msgspec.json.encode(hook.body), headers


def build_request(hook: Webhook, ctx: RunContext) -> WebhookRequest:
    """The one HTTP request of an attempt."""
    content, headers = _content(hook)
    return WebhookRequest(url=hook.url, method=hook.method, headers=headers, content=content)


@task_kind("webhook", payload=Webhook, policy=fixed_policy, check=check_webhook, request=build_request)
def webhook(hook: Webhook, ctx: RunContext) -> AttemptResult:
    return send(ctx.http, build_request(hook, ctx), ctx.timeout_s)
