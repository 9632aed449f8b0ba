"""Send one webhook request on an event loop with aiohttp, and classify the outcome.

Why aiohttp: measured here (2 cores, 256 requests in flight, POST of a small JSON body), CPU per
request of the client process was ~0.3-0.4 ms for aiohttp, ~1.35 ms for the sync `httpx.Client`
from 16 threads and 8-12 ms for `httpx.AsyncClient` (its pool search grows with the connections).

How the outcome is classified and worded is transports/outcome.py's, shared with the sync sender
(http.py): this module only names the stage at which aiohttp failed (`_stage`). Only the status,
the `Retry-After` header and a bounded prefix of the body are read.

An egress guard plugs in as aiohttp's resolver (`resolver_factory=`, called on the loop): it
resolves once, checks every address, and raises its own exception for a blocked one; list that
exception in `permanent_errors` so the attempt fails permanently instead of being retried.
aiohttp skips the resolver for an IP-literal host, so with a guard set the sender passes those
through `resolve()` itself before sending: the guard sees every destination.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver

from queue_system.domain.destinations import Destination
from queue_system.domain.models import AttemptResult, Outcome
from queue_system.domain.sendable import request_problem, unsendable
from queue_system.transports.egress import EgressBlocked
from queue_system.transports.http import WebhookRequest
from queue_system.transports.outcome import (
    READ_LIMIT,
    Failure,
    answered_with,
    describe,
    failed,
)

# The share of a request's timeout its TCP connect (and TLS handshake) may take: past it, the
# attempt is a connect timeout, counted against the host (see `exchange`).
CONNECT_SHARE = 0.9


def destination(url: str) -> Destination:
    """`https://Example.com/x` -> the host Destination("https", "example.com", 443): what the
    delivery loop's per-host cap counts.

    Only `scheme://netloc` decides it, so the parse is cached on that prefix: every task may have
    its own path (or token in it), a queue's webhooks still go to a handful of hosts. A prefix that
    `urlsplit` would read differently (white space or controls it strips) takes the full parse."""
    sep = url.find("://")
    if sep > 0:
        end = len(url)
        for c in "/?#":
            i = url.find(c, sep + 3)
            if 0 <= i < end:
                end = i
        origin = url[:end]
        if origin.isascii() and origin.isprintable() and " " not in origin:
            return _host_of(origin)
    return Destination.of_url(url).host_only()


@functools.lru_cache(maxsize=4096)
def _host_of(origin: str) -> Destination:
    return Destination.of_url(origin).host_only()


@functools.lru_cache(maxsize=256)
def _timeout(timeout_s: float) -> aiohttp.ClientTimeout:
    """A connect that outlasts CONNECT_SHARE of the budget is the host's fault (it raises
    ConnectionTimeoutError); with `total` alone it would read as a response timeout. Frozen, so
    shared: a queue's tasks have a few distinct timeouts, building one per request cost ~1%."""
    return aiohttp.ClientTimeout(total=timeout_s, sock_connect=timeout_s * CONNECT_SHARE)


@dataclass(frozen=True, slots=True)
class PoolLimits:
    max_connections: int = 256  # all destinations together
    max_per_host: int = 32  # per (scheme, host, port)
    keepalive_s: float = 30.0  # an idle connection is closed after this long


class AsyncHttpSender:
    """One pooled aiohttp session; create, use and close it on one event loop."""

    def __init__(
        self,
        limits: PoolLimits,
        *,
        user_agent: str = "queue_system-webhooks/0.1",
        resolver_factory: Callable[[], AbstractResolver] | None = None,
        permanent_errors: tuple[type[BaseException], ...] = (),
        connector_factory: Callable[..., aiohttp.TCPConnector] | None = None,
        follow_redirects: bool = False,
        max_redirects: int = 5,
    ) -> None:
        """`connector_factory(limit=, limit_per_host=, keepalive_timeout=)`, called on the loop,
        replaces the plain connector: e.g. `functools.partial(kinds.webhook_security.egress_connector,
        settings)`, the egress guard (it checks literals and every redirect hop itself)."""
        self.limits = limits
        self.user_agent = user_agent
        self.resolver_factory = resolver_factory
        self._resolver: AbstractResolver | None = None
        self.permanent_errors = permanent_errors
        self.connector_factory = connector_factory
        self.follow_redirects = follow_redirects  # WEBHOOK_FOLLOW_REDIRECTS; each hop connects anew
        self.max_redirects = max_redirects
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        limits = self.limits
        if self.connector_factory is not None:
            connector = self.connector_factory(
                limit=limits.max_connections,
                limit_per_host=limits.max_per_host,
                keepalive_timeout=limits.keepalive_s,
            )
        else:
            self._resolver = self.resolver_factory() if self.resolver_factory else None
            connector = aiohttp.TCPConnector(
                limit=limits.max_connections,
                limit_per_host=limits.max_per_host,
                keepalive_timeout=limits.keepalive_s,
                resolver=self._resolver,
            )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": self.user_agent},
            # No cookies carried from one customer's webhook to another's; no env proxies.
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, request: WebhookRequest, timeout_s: float) -> AttemptResult:
        if self._session is None:
            raise RuntimeError("AsyncHttpSender.open() has not run")
        problem = request_problem(request.url, request.headers)
        if problem is not None:  # e.g. a task stored before the submit checked this
            return unsendable(problem)
        return await self.exchange(self._session, request, timeout_s)

    async def exchange(
        self, session: aiohttp.ClientSession, request: WebhookRequest, timeout_s: float
    ) -> AttemptResult:
        """`send` without our sendability check: the request as aiohttp itself takes it or refuses it."""
        try:
            if self._resolver is not None:
                await _check_literal(self._resolver, request.url)
            async with session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.content,
                timeout=_timeout(timeout_s),
                allow_redirects=self.follow_redirects,
                max_redirects=self.max_redirects,
            ) as response:
                body = await _read_prefix(response)
                return answered_with(response.status, response.headers, body)
        except Exception as exc:  # (classified below; anything else is raised again)
            return _failure(exc, request.url, timeout_s, self.permanent_errors)


# aiohttp's exceptions -> the stage they mean, most specific first (ConnectionTimeoutError is a
# TimeoutError; ClientConnectorError, ServerDisconnectedError are ClientErrors).
_STAGES: tuple[tuple[type[BaseException], Failure], ...] = (
    (aiohttp.ConnectionTimeoutError, Failure.CONNECT_TIMEOUT),
    (TimeoutError, Failure.RESPONSE_TIMEOUT),
    (aiohttp.TooManyRedirects, Failure.REDIRECTS),
    (aiohttp.ClientConnectorError, Failure.CONNECT),  # DNS, refused, TLS (its subclasses)
    (aiohttp.ServerDisconnectedError, Failure.CLOSED),
    (aiohttp.ClientPayloadError, Failure.CLOSED),
)


def _failure(
    exc: Exception, url: str, timeout_s: float, permanent: tuple[type[BaseException], ...]
) -> AttemptResult:
    """The outcome of an exchange that raised `exc` (raised again if it is none of these)."""
    if isinstance(exc, aiohttp.InvalidURL):
        return AttemptResult(Outcome.PERMANENT, error=f"invalid URL: {exc}", detail=describe(exc))
    if isinstance(exc, permanent) and not isinstance(exc, EgressBlocked):
        return AttemptResult(Outcome.PERMANENT, error=f"refused on our side: {exc}", detail=describe(exc))
    if isinstance(exc, ValueError) and not isinstance(exc, aiohttp.ClientError):
        # (aiohttp's certificate errors are ValueErrors too: those are the host's, below.)
        # aiohttp refusing to write the request ("Forbidden control character detected in
        # headers"): raised before anything is sent, our side's doing, never the destination's.
        return unsendable(f"{type(exc).__name__}: {exc}")
    if not isinstance(exc, aiohttp.ClientError | OSError | EgressBlocked):
        raise exc
    stage = next((s for t, s in _STAGES if isinstance(exc, t)), Failure.NETWORK)
    budget = timeout_s * CONNECT_SHARE if stage is Failure.CONNECT_TIMEOUT else timeout_s
    return failed(stage, exc, url, budget)


async def _check_literal(resolver: AbstractResolver, url: str) -> None:
    """Put an IP-literal host through the guard's resolver, which aiohttp would skip."""
    where = destination(url)
    host, port = where.host, where.port
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return  # a name: the connector resolves it through the guard
    await resolver.resolve(host, port)


async def _read_prefix(response: aiohttp.ClientResponse) -> bytes:
    buf = bytearray()
    while len(buf) < READ_LIMIT:
        chunk = await response.content.read(READ_LIMIT - len(buf))
        if not chunk:
            return bytes(buf)
        buf += chunk
    # More than READ_LIMIT: close rather than drain, so a huge body cannot hold the connection.
    response.close()
    return bytes(buf)


__all__ = [
    "AsyncHttpSender",
    "Destination",
    "PoolLimits",
    "WebhookRequest",
    "destination",
]
