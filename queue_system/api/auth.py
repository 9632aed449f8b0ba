"""The API's front door: API keys, the per-key rate limit and the JSON nesting cap, as one check.

`ApiGuard` runs before a request's body is decoded, on every `/api/...` route, every old-system
alias (`compat.py`) and `/metrics` (any key, read-only too; open with METRICS_PUBLIC=true), never on
`/health`, `/ready`, `/healthz` or `/schema` (the dashboard has its own sessions):

- a missing or unknown key -> 401 (`WWW-Authenticate: Bearer`); a read key on a change -> 403;
- API_AUTH_FAILURES wrong keys from one client address lock it out -> 429 with `Retry-After`, for
  API_AUTH_LOCKOUT, doubling with each lockout (storage/auth_failures.py via
  service/access.py, shared through Redis);
- over `API_RATE_LIMIT` -> 429 with `Retry-After` (one Redis token bucket per key, shared by every
  API process: `storage/rate_limit.py`);
- a JSON body nested deeper than `MAX_JSON_DEPTH` -> 422, checked on the raw bytes (msgspec would
  hit Python's recursion limit on very deep input, a 500).

The hot path stays cheap: a presented key's role is looked up once (SHA-256 and a constant-time
comparison with every configured key) and then kept in a dict for that exact string. It runs as the
innermost middleware (`ApiGuard.middleware`), not as a Litestar guard: Litestar copies the route
handler for every guard call (`copy(self)` in `authorize_connection`), a twentieth of the API's
CPU per submit. A refusal is answered there by the app's own exception handlers, so the request
metrics and `count_rejections`, outside it, see the response as they would a handler's.

Lockouts without slowing valid keys: only a failure costs a Redis call. Its answer (locked, and for
how long) is kept in this process, and a locked address is refused *before* its key is checked, a
valid key included, as GitHub does: otherwise a locked-out guesser would still learn when a guess is
right. Another process learns of a lock at that address's first failure there. The client address
is the peer's, or with API_TRUSTED_PROXIES the right-most untrusted `X-Forwarded-For` entry
(`client_address`): a client cannot pick its own address by sending the header itself.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis
from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Receive, Scope, Send
from loguru import logger

from queue_system.api import problems
from queue_system.api.keys import KeyRing, Role, presented_key, startup_problem, startup_warning
from queue_system.config.settings import Settings
from queue_system.domain.redaction import raw_json_depth_problem
from queue_system.errors import ConfigError, InvalidInput, QueueSystemError
from queue_system.service.access import AccessStores, FailureCounts, FailureState, RateLimits
from queue_system.transports.egress_ranges import IPNetwork

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
WWW_AUTHENTICATE = 'Bearer realm="queue_system"'
# Roles of keys seen before, by the exact presented string; only known keys are kept (an unknown
# key costs its hash each time), and the dict cannot grow past this many.
MAX_CACHED_KEYS = 1024
OPEN_PATHS = frozenset({"/healthz"})  # the old system's liveness probe stays open, like /health
METRICS_PATH = "/metrics"
MAX_LOCAL_LOCKS = 10_000  # locked addresses remembered in this process (the truth is in Redis)
LOCKED_DETAIL = "too many wrong API keys from this address; retry after the time given"
# `ApiGuard.charge`, as a route gets it: take that many tokens for the request in all.
Charge = Callable[[ASGIConnection[Any, Any, Any, Any], int], Awaitable[None]]


class AccessRefused(Exception):
    """401/403/429 from the guard; `on_access_refused` turns it into a problem."""

    def __init__(self, status: int, slug: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.headers = headers


def on_access_refused(request: Request[Any, Any, Any], exc: AccessRefused) -> Response[dict[str, Any]]:
    return problems.problem(request, exc.status, exc.slug, exc.detail, headers=exc.headers)


def key_ring(settings: Settings) -> KeyRing:
    """The configured keys; ConfigError (naming the variable) for a bad entry or file."""
    api = settings.api
    try:
        return KeyRing.from_settings(api.keys, api.read_keys, api.keys_file)
    except ValueError as exc:
        variable, _, message = str(exc).partition(": ")
        raise ConfigError(variable, message) from None
    except OSError as exc:
        raise ConfigError("API_KEYS_FILE", f"cannot be read ({exc.strerror})") from None


def refusal(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """The problem response for what the front door raised, as the app's exception handlers make it."""
    if isinstance(exc, AccessRefused):
        return on_access_refused(request, exc)
    if isinstance(exc, QueueSystemError):
        return problems.on_app_error(request, exc)
    assert isinstance(exc, HTTPException)  # the body over API_MAX_BODY_BYTES: 413
    return problems.on_http_error(request, exc)


@dataclass
class ApiGuard:
    """The front door (`middleware`). `limiter` is set by the app's lifespan (it needs Redis)."""

    ring: KeyRing
    auth_on: bool
    alias_paths: frozenset[str] = frozenset()
    alias_prefixes: tuple[str, ...] = ()
    metrics_protected: bool = True  # METRICS_PUBLIC=true: False
    limiter: RateLimits | None = None
    throttle: FailureCounts | None = None
    trusted_proxies: tuple[IPNetwork, ...] = ()
    _roles: dict[str, Role] = field(default_factory=dict, repr=False)
    # Locked client addresses this process has heard of -> until when (time.monotonic()).
    _locked: dict[str, float] = field(default_factory=dict, repr=False)

    def protects(self, path: str) -> bool:
        if path.startswith("/api/"):
            return True
        if path in OPEN_PATHS:
            return False
        if path == METRICS_PATH:
            return self.metrics_protected
        return path in self.alias_paths or path.startswith(self.alias_prefixes)

    def role(self, key: str) -> Role | None:
        role = self._roles.get(key)
        if role is None:
            role = self.ring.authorize(key)
            if role is not None and len(self._roles) < MAX_CACHED_KEYS:
                self._roles[key] = role
        return role

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """This check as the innermost middleware of the app (the module docstring says why)."""

        async def front_door(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP or not self.protects(scope["path"]):
                await app(scope, receive, send)
                return
            request: Request[Any, Any, Any] = Request(scope, receive, send)
            try:
                await self.check(request)
            except (AccessRefused, QueueSystemError, HTTPException) as exc:
                await refusal(request, exc).to_asgi_response(None, request)(scope, receive, send)
                return
            await app(scope, receive, send)  # (the body read here is cached in the scope)

        return front_door

    async def check(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        """Raise AccessRefused (401, 403, 429) or InvalidInput (422) for a protected request."""
        scope = connection.scope
        if not self.protects(scope["path"]):
            return
        method = str(scope.get("method", "GET"))
        key: str | None = None
        if self.auth_on:
            address = self.address(scope) if self._locked else None
            if address is not None:
                self.refuse_if_locked(address)  # before the key is looked at (the docstring says why)
            key = _presented(scope["headers"])
            role = self.role(key) if key else None
            if role is None:
                if key is not None:  # a wrong key, not a forgotten one: it counts
                    await self.failed(address or self.address(scope), "API key")
                detail = "an API key is required" if key is None else "unknown API key"
                raise AccessRefused(401, "unauthorized", detail, {"WWW-Authenticate": WWW_AUTHENTICATE})
            if role is Role.READ and method not in READ_METHODS:
                raise AccessRefused(403, "forbidden", "this API key may only read (GET)")
        if self.limiter is not None:
            await self._limit(connection, key)
        if method in BODY_METHODS and isinstance(connection, Request):
            problem = raw_json_depth_problem(await connection.body(), field="body")
            if problem is not None:
                raise InvalidInput(problem[1], field=problem[0])

    async def charge(self, connection: ASGIConnection[Any, Any, Any, Any], cost: int) -> None:
        """A request that counts as `cost` under API_RATE_LIMIT (a batch submit: one per item;
        the front door took one already). A cost beyond the bucket's size could never be
        admitted: 422 naming `tasks` (the batch's items), saying how many fit."""
        if self.limiter is None or cost <= 1:
            return
        burst = self.limiter.rate.burst
        if cost > burst:
            raise InvalidInput(
                f"{cost} items cost {cost} requests of API_RATE_LIMIT, whose burst is {burst}: "
                f"send at most {burst} per batch",
                field="tasks",
            )
        key = _presented(connection.scope["headers"]) if self.auth_on else None
        await self._limit(connection, key, cost - 1)

    async def _limit(
        self, connection: ASGIConnection[Any, Any, Any, Any], key: str | None, cost: int = 1
    ) -> None:
        assert self.limiter is not None
        identity = f"key:{key}" if key else f"ip:{self.address(connection.scope)}"
        decision = await self.limiter.check(identity, cost)
        if not decision.allowed:
            raise AccessRefused(
                429,
                "rate-limited",
                "too many requests for this API key (API_RATE_LIMIT); retry after the time given",
                {"Retry-After": str(decision.retry_after_s)},
            )

    def address(self, scope: Scope) -> str:
        """The client, as the lockout and the rate limit count it (`counted_as`)."""
        peer = scope.get("client")
        forwarded = _forwarded_for(scope["headers"])
        return counted_as(client_address(peer[0] if peer else None, forwarded, self.trusted_proxies))

    def refuse_if_locked(self, address: str) -> None:
        """AccessRefused (429) if this process knows `address` to be locked out."""
        until = self._locked.get(address)
        if until is None:
            return
        left = until - time.monotonic()
        if left <= 0:
            del self._locked[address]
            return
        raise AccessRefused(
            429, "too-many-failures", LOCKED_DETAIL, {"Retry-After": str(max(1, math.ceil(left)))}
        )

    async def check_lock(self, address: str, what: str) -> None:
        """AccessRefused (429) if `address` is locked out, asking Redis (for the rare checks that can
        afford a round trip: the dashboard's sign-in)."""
        self.refuse_if_locked(address)
        if self.throttle is None:
            return
        try:
            state = await self.throttle.state(address)
        except redis.RedisError as exc:
            logger.warning("could not read the lockout of {}: {}", address, exc)
            return
        self.note(address, state, what)

    async def failed(self, address: str, what: str) -> None:
        """Count a wrong key from `address`; AccessRefused (429) if that locked it, or it was."""
        if self.throttle is None:
            return
        try:
            state = await self.throttle.failed(address)
        except redis.RedisError as exc:  # no lockouts while Redis is away; the key check still holds
            logger.warning("could not count a failed {} check from {}: {}", what, address, exc)
            return
        self.note(address, state, what)

    def note(self, address: str, state: FailureState, what: str) -> None:
        """Remember a lock Redis reported for `address` and refuse (429); log a new one."""
        if not state.locked_ms:
            return
        if state.new_lock:
            logger.warning(
                "{} checks from {} locked out for {}s after {} wrong keys (lockout {})",
                what,
                address,
                state.retry_after_s,
                self.throttle.limit.threshold if self.throttle else "?",
                state.strikes,
            )
        if len(self._locked) >= MAX_LOCAL_LOCKS:
            now = time.monotonic()
            self._locked = {a: u for a, u in self._locked.items() if u > now}
        if len(self._locked) < MAX_LOCAL_LOCKS:
            self._locked[address] = time.monotonic() + state.locked_ms / 1000
        headers = {"Retry-After": str(state.retry_after_s)}
        raise AccessRefused(429, "too-many-failures", LOCKED_DETAIL, headers)

    def start(self, access: AccessStores, trusted_proxies: tuple[IPNetwork, ...] = ()) -> None:
        """At the lifespan's start (service/access.py builds `access` on the app's Redis client):
        the shared rate limiter (if API_RATE_LIMIT is set) and the lockout of addresses that
        present wrong keys; `trusted_proxies`: API_TRUSTED_PROXIES."""
        self.limiter = access.limiter
        self.throttle = access.failures
        self.trusted_proxies = trusted_proxies


def _presented(raw_headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    # Straight from the ASGI scope: building Litestar's Headers for two lookups cost more than the
    # rest of the guard.
    authorization = x_api_key = None
    for name, value in raw_headers:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"x-api-key":
            x_api_key = value.decode("latin-1")
    return presented_key(authorization, x_api_key)


def _forwarded_for(raw_headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    values = [value.decode("latin-1") for name, value in raw_headers if name == b"x-forwarded-for"]
    return ",".join(values) if values else None


def _trusted(address: str, trusted: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:  # ::ffff:10.0.0.1 is 10.0.0.1
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in trusted)


def client_address(peer: str | None, forwarded_for: str | None, trusted: tuple[IPNetwork, ...]) -> str:
    """Who the client is: the peer, unless the peer is a trusted proxy; then `X-Forwarded-For` read
    from the right (each proxy appends the address it saw), skipping trusted proxies: the first
    entry no trusted proxy wrote. Entries left of it are whatever the client sent, so never used."""
    address = peer or "unknown"
    if not forwarded_for or not trusted or not _trusted(address, trusted):
        return address
    for entry in reversed(forwarded_for.split(",")):
        hop = entry.strip()
        try:
            ipaddress.ip_address(hop.strip("[]"))
        except ValueError:
            return address  # not an address: the proxy before it did not write it; stop there
        address = hop.strip("[]")
        if not _trusted(address, trusted):
            return address
    return address  # every hop a trusted proxy: the left-most one


def counted_as(address: str) -> str:
    """An IPv6 client counts as its /64: one subscriber commonly holds a whole /64, so counting
    single addresses would let it rotate through 2^64 of them. IPv4 (mapped too) as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 4:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False))


def build_guard(settings: Settings, alias_routes: Iterable[str] = ()) -> tuple[ApiGuard, str | None]:
    """The guard and the warning to log at start (None when keys are required). ConfigError when
    the settings forbid starting: ENV=production without keys and without API_AUTH=disabled."""
    ring = key_ring(settings)
    disabled = settings.api.auth == "disabled"
    problem = startup_problem(ring, production=settings.production, auth_disabled=disabled)
    if problem:
        raise ConfigError("API_KEYS", problem)
    exact = frozenset(p for p in alias_routes if "{" not in p)
    prefixes = tuple(p.split("{", 1)[0] for p in alias_routes if "{" in p)
    guard = ApiGuard(
        ring,
        auth_on=ring.enabled and not disabled,
        alias_paths=exact,
        alias_prefixes=prefixes,
        metrics_protected=not settings.api.metrics_public,
    )
    return guard, startup_warning(ring, auth_disabled=disabled)
