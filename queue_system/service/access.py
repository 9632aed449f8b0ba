"""What the API's front door (api/auth.py) and the dashboard's sign-in (api/dashboard/auth.py) keep
in Redis: the per-key rate limit, the lockout of addresses presenting wrong keys, the sessions.

api/ never imports storage/ (a contract in pyproject.toml): the composition root (api/app.py)
calls `access_stores` in its lifespan and hands the result on; the API knows the parts by the
Protocols below. The value types are storage's, re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis

from queue_system.config.settings import Settings
from queue_system.storage.auth_failures import AsyncFailureThrottle
from queue_system.storage.auth_failures import FailureLimit as FailureLimit
from queue_system.storage.auth_failures import FailureState as FailureState
from queue_system.storage.keys import Keys
from queue_system.storage.rate_limit import AsyncRateLimiter, Rate
from queue_system.storage.rate_limit import RateDecision as RateDecision
from queue_system.storage.sessions import AsyncSessionStore


class RateLimits(Protocol):
    @property
    def rate(self) -> Rate:
        """The bucket's size and refill (API_RATE_LIMIT)."""
        ...

    async def check(self, identity: str, cost: int = 1) -> RateDecision:
        """Take `cost` tokens from `identity`'s bucket (storage/rate_limit.py)."""
        ...


class FailureCounts(Protocol):
    @property
    def limit(self) -> FailureLimit: ...

    async def failed(self, address: str) -> FailureState:
        """Count one wrong key from `address`; -> its state after it."""
        ...

    async def state(self, address: str) -> FailureState:
        """Read only: is `address` locked now."""
        ...


class SessionStore(Protocol):
    async def open(self, session_id: str, role: str, csrf: str, *, now_ms: int, ttl_s: int) -> None: ...

    async def touch(self, session_id: str, ttl_s: int) -> tuple[str, str] | None:
        """-> (role, csrf), the expiry renewed; None: no such session."""
        ...

    async def close(self, session_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class AccessStores:
    limiter: RateLimits | None  # None: API_RATE_LIMIT unset, no limit
    failures: FailureCounts
    sessions: SessionStore


def access_stores(client: aioredis.Redis, settings: Settings, keys: Keys) -> AccessStores:
    """The three on one client, as `settings` configure them (API_RATE_LIMIT, API_AUTH_FAILURES,
    API_AUTH_LOCKOUT)."""
    api = settings.api
    rate = api.rate_limit
    limit = FailureLimit(
        threshold=api.auth_failures.count,
        window_ms=api.auth_failures.period_ms,
        lockout_ms=api.auth_lockout_ms,
    )
    return AccessStores(
        limiter=AsyncRateLimiter(client, rate, keys.prefix) if rate is not None else None,
        failures=AsyncFailureThrottle(client, limit, keys),
        sessions=AsyncSessionStore(client, keys),
    )
