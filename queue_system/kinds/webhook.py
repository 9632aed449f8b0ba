"""The `webhook` kind: one HTTP request per attempt, retried at a fixed interval until a deadline.

The payload is checked at submit time (URL, method, header names); the request goes out through
the worker's shared `httpx.Client` (`transports/http.py`), which also classifies the outcome.
"""

from __future__ import annotations

import functools
from typing import Any

import httpx
import msgspec

from queue_system.domain.models import AttemptResult
from queue_system.errors import InvalidInput
from queue_system.kinds.registry import RunContext, fixed_policy, task_kind
from queue_system.transports.async_http import destination
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


@functools.lru_cache(maxsize=4096)
def _destination_of(url: str) -> str:
    scheme, host, port = destination(url)
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def destination_of(hook: Webhook) -> str:
    """Where the webhook goes, as its destination's cap and circuit breaker know it:
    `scheme://host:port`, the host lower-cased, the scheme's default port filled in."""
    return _destination_of(hook.url)


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


@task_kind("webhook", payload=Webhook, policy=fixed_policy, check=check_webhook)
def webhook(hook: Webhook, ctx: RunContext) -> AttemptResult:
    content, headers = _content(hook)
    request = WebhookRequest(url=hook.url, method=hook.method, headers=headers, content=content)
    return send(ctx.http, request, ctx.timeout_s)
