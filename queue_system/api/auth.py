"""The API's front door: API keys, the per-key rate limit and the JSON nesting cap, as one check.

`ApiGuard` runs before a request's body is decoded, on every `/api/...` route and every old-system
alias (`compat.py`), never on `/health`, `/ready`, `/healthz`, `/schema` or `/metrics`:

- a missing or unknown key -> 401 (`WWW-Authenticate: Bearer`); a read key on a change -> 403;
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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Receive, Scope, Send

from queue_system.api import problems
from queue_system.api.keys import KeyRing, Role, presented_key, startup_problem, startup_warning
from queue_system.domain.redaction import raw_json_depth_problem
from queue_system.errors import ConfigError, InvalidInput, QueueSystemError
from queue_system.settings import Settings
from queue_system.storage.rate_limit import AsyncRateLimiter

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
WWW_AUTHENTICATE = 'Bearer realm="queue_system"'
# Roles of keys seen before, by the exact presented string; only known keys are kept (an unknown
# key costs its hash each time), and the dict cannot grow past this many.
MAX_CACHED_KEYS = 1024
OPEN_PATHS = frozenset({"/healthz"})  # the old system's liveness probe stays open, like /health


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
    limiter: AsyncRateLimiter | None = None
    _roles: dict[str, Role] = field(default_factory=dict, repr=False)

    def protects(self, path: str) -> bool:
        if path.startswith("/api/"):
            return True
        if path in OPEN_PATHS:
            return False
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
            key = _presented(scope["headers"])
            role = self.role(key) if key else None
            if role is None:
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

    async def _limit(self, connection: ASGIConnection[Any, Any, Any, Any], key: str | None) -> None:
        assert self.limiter is not None
        client = connection.client
        identity = f"key:{key}" if key else f"ip:{client.host if client else 'unknown'}"
        decision = await self.limiter.check(identity)
        if not decision.allowed:
            raise AccessRefused(
                429,
                "rate-limited",
                "too many requests for this API key (API_RATE_LIMIT); retry after the time given",
                {"Retry-After": str(decision.retry_after_s)},
            )

    def start(self, client: aioredis.Redis, settings: Settings, prefix: str) -> None:
        """At the lifespan's start: the shared rate limiter, if API_RATE_LIMIT is set."""
        rate = settings.api.rate_limit
        self.limiter = AsyncRateLimiter(client, rate, prefix) if rate is not None else None


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
    guard = ApiGuard(ring, auth_on=ring.enabled and not disabled, alias_paths=exact, alias_prefixes=prefixes)
    return guard, startup_warning(ring, auth_disabled=disabled)
