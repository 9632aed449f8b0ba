"""The `webhook` kind: one HTTP request per attempt, retried at a fixed interval until a deadline.

The payload is checked at submit time (URL, a literal address the egress guard blocks, method,
headers, the write-only `signing_secret`): what is accepted both senders can send as written
(domain/sendable.py, which they check again before sending). The worker sends the request
`build_request` makes on its event loop (many in flight per process: worker/delivery_loop.py,
behind the egress guard); the handler sends the same request through the shared `httpx.Client`
(`transports/http.py`), for a runner without a loop. Both classify the outcome the same way.
Every request carries the Standard Webhooks headers (`signature_headers`): `webhook-id` (the
same for every attempt of a task), `webhook-timestamp`, and `webhook-signature` when a secret is
set (the task's own `signing_secret`, else WEBHOOK_SIGNING_SECRET).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import msgspec
import yarl

from queue_system.config.settings import Settings
from queue_system.domain.destinations import ENDPOINT_KEY, ENDPOINT_KEY_RULE, Destination
from queue_system.domain.models import AttemptResult
from queue_system.domain.redaction import header_problems
from queue_system.domain.sendable import url_problem
from queue_system.errors import InvalidInput
from queue_system.kinds.registry import KINDS_ATTRIBUTE, RunContext, TaskKind, fixed_policy, task_kind
from queue_system.kinds.webhook_security import egress_policy, signing_keys
from queue_system.transports.egress import EgressPolicy
from queue_system.transports.http import WebhookRequest, send
from queue_system.transports.signing import parse_secret, webhook_headers, webhook_id

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class Webhook(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    method: str = "POST"
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    # A string is sent as is; any other JSON value is sent encoded, as application/json.
    body: str | dict[str, Any] | list[Any] | int | float | bool | None = None
    # Write-only: stored for the worker to sign with, never shown (api/schemas.py) nor logged.
    # UNSET is left out of the stored JSON: a task without one costs no bytes.
    signing_secret: str | msgspec.UnsetType = msgspec.UNSET
    # The receiver, for the circuit breaker (domain/destinations.py): tasks with one key share one
    # endpoint breaker on their host, whatever their URLs; UNSET: the URL without its query.
    endpoint: str | msgspec.UnsetType = msgspec.UNSET


@functools.lru_cache(maxsize=4096)
def _url_problem(url: str) -> str | None:
    """Why a sender cannot use this URL as written (domain/sendable.py's rule, then httpx's and
    yarl's parsers: e.g. a host name IDNA refuses), or None. Cached: parsing costs ~9 us, and a
    queue's webhooks go to a handful of endpoints."""
    problem = url_problem(url)
    if problem is not None:
        return problem
    try:
        parsed = httpx.URL(url)
        # httpx decodes an `xn--` label when it builds a request: IDNAError (a ValueError) here.
        host = parsed.host
        aiohttp_host = yarl.URL(url).raw_host  # aiohttp's parser: it raises for a host it cannot encode
    except (httpx.InvalidURL, ValueError) as exc:
        return str(exc) or "not a URL the HTTP clients can send to"
    if parsed.scheme not in ("http", "https") or not host or not aiohttp_host:
        return "must be an absolute http:// or https:// URL"
    return None


@functools.lru_cache(maxsize=4096)
def _url_destination(url: str) -> Destination:
    parsed = Destination.of_url(url)
    url_ = httpx.URL(url)
    host = url_.raw_host.decode("ascii").lower()  # as httpx sends it: IDNA, ASCII
    # The path as the clients send it (httpx's normalisation: percent-encoding, an empty path "/").
    path = url_.raw_path.split(b"?", 1)[0].decode("ascii")
    return Destination(parsed.scheme, host, parsed.port, path)


def destination(hook: Webhook) -> Destination:
    """Where the webhook goes (the kind's `destination` hook): its host, scheme and host
    lower-cased (an IDNA host in its ASCII form), the default port filled in, and its endpoint: the
    caller's `endpoint` key as `#key`, else the URL's path without query and fragment, as sent."""
    url_dest = _url_destination(hook.url)
    if isinstance(hook.endpoint, str):
        return Destination(url_dest.scheme, url_dest.host, url_dest.port, f"#{hook.endpoint}")
    return url_dest


def destination_of(hook: Webhook) -> str:
    """The host as its cap and breaker know it: `scheme://host:port`."""
    return str(destination(hook))


def endpoint_of(hook: Webhook) -> str:
    """The endpoint as its breaker knows it (domain/destinations.py): `scheme://host:port/path`
    or `scheme://host:port#key`."""
    return destination(hook).endpoint


_STRICT = EgressPolicy()  # the default deny list, for a kind built without settings


def check_webhook(hook: Webhook, policy: EgressPolicy = _STRICT) -> Webhook:
    problem = _url_problem(hook.url)
    if problem:
        raise InvalidInput(problem, field="url")
    # A literal address (or `localhost`) the guard would refuse fails now, not on the first attempt;
    # a name is resolved and checked where the worker connects.
    blocked = _literal_problem(policy, hook.url)
    if blocked:
        raise InvalidInput(f"egress blocked: {blocked} (EGRESS_ALLOW_CIDRS opens a range)", field="url")
    method = hook.method.upper()
    if method not in METHODS:
        raise InvalidInput(f"must be one of {', '.join(sorted(METHODS))}", field="method")
    if hook.headers:
        for field, message in _header_problems(tuple(hook.headers.items())):
            raise InvalidInput(message, field=field)
    if isinstance(hook.signing_secret, str):
        try:
            parse_secret(hook.signing_secret)
        except ValueError as exc:
            raise InvalidInput(str(exc).removeprefix("signing_secret: "), field="signing_secret") from None
    if isinstance(hook.endpoint, str) and not ENDPOINT_KEY.fullmatch(hook.endpoint):
        raise InvalidInput(ENDPOINT_KEY_RULE, field="endpoint")
    hook.method = method
    return hook


# Cached like `_url_problem`: a queue's webhooks repeat a handful of URLs and header sets.
@functools.lru_cache(maxsize=4096)
def _literal_problem(policy: EgressPolicy, url: str) -> str | None:
    return policy.check_url_literal(url)


@functools.lru_cache(maxsize=4096)
def _header_problems(headers: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    return tuple(header_problems(dict(headers)))


def webhook_checker(policy: EgressPolicy) -> Callable[[Webhook], Webhook]:
    """`check_webhook` under the configured egress policy (EGRESS_*)."""
    return functools.partial(check_webhook, policy=policy)


def request_keys(hook: Webhook, server_keys: Sequence[bytes]) -> Sequence[bytes]:
    """The keys a delivery is signed with: the task's own secret replaces the server's."""
    if isinstance(hook.signing_secret, str):
        return (_task_key(hook.signing_secret),)
    return server_keys


@functools.lru_cache(maxsize=1024)
def _task_key(secret: str) -> bytes:
    return parse_secret(secret)


def signature_headers(
    task_id: str, content: bytes | None, keys: Sequence[bytes], now: float | None = None
) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt, signed over exactly `content` (the bytes sent):
    `webhook-id` (stable per task), `webhook-timestamp`, and `webhook-signature` when `keys`."""
    return webhook_headers(webhook_id(task_id), content or b"", keys, time.time() if now is None else now)


def _content(hook: Webhook) -> tuple[bytes | None, dict[str, str]]:
    headers = dict(hook.headers)
    if hook.body is None:
        return None, headers
    if isinstance(hook.body, str):
        return hook.body.encode(), headers
    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    return msgspec.json.encode(hook.body), headers


def _request(hook: Webhook, ctx: RunContext, server_keys: Sequence[bytes]) -> WebhookRequest:
    """The one HTTP request of an attempt, signed over the exact bytes sent."""
    content, headers = _content(hook)
    headers.update(signature_headers(ctx.task_id, content, request_keys(hook, server_keys)))
    return WebhookRequest(url=hook.url, method=hook.method, headers=headers, content=content)


def build_request(hook: Webhook, ctx: RunContext) -> WebhookRequest:
    """Without settings: no server signing key (the task's own `signing_secret` still signs)."""
    return _request(hook, ctx, ())


@task_kind(
    "webhook",
    payload=Webhook,
    policy=fixed_policy,
    check=check_webhook,
    request=build_request,
    destination=destination,
)
def webhook(hook: Webhook, ctx: RunContext) -> AttemptResult:
    """Without settings: the default egress deny list, no server signing key."""
    return send(ctx.http, build_request(hook, ctx), ctx.timeout_s)


def webhook_kind(settings: Settings) -> TaskKind:
    """The webhook kind as a process serves it: checked under EGRESS_*, signed with
    WEBHOOK_SIGNING_SECRET (fields added to the decorated kind are kept)."""
    base: TaskKind = getattr(webhook, KINDS_ATTRIBUTE)[0]
    keys = signing_keys(settings)

    def request(hook: Webhook, ctx: RunContext) -> WebhookRequest:
        return _request(hook, ctx, keys)

    def handler(hook: Webhook, ctx: RunContext) -> AttemptResult:
        return send(ctx.http, request(hook, ctx), ctx.timeout_s)

    return dataclasses.replace(
        base, handler=handler, request=request, check=webhook_checker(egress_policy(settings))
    )
