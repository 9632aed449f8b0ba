"""A strict per-key rate limit shared by every API process: a token bucket in Redis, one Lua call per
check. (Litestar's own limiter locks per process and can over-admit across processes.)

Key: `Keys.rate_bucket(sha256(identity)[:32])`, a hash {level, ts}; it expires when the bucket would be
full again, so an idle key costs nothing. The identity (an API key) is hashed: no key in Redis names it.
Time comes from Redis (TIME), so API hosts with skewed clocks still share one bucket correctly.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

from queue_system.storage.keys import Keys

# KEYS[1] the bucket hash.  ARGV[1] count: tokens added per period  ARGV[2] period_ms
# ARGV[3] burst: the bucket's size in tokens  ARGV[4] cost: tokens this request takes
# The level is kept in token*period_ms units, so refill (elapsed_ms * count) and cost (cost *
# period_ms) stay whole numbers: no float drift, and Lua's numbers convert to Redis integers exactly.
# Returns {allowed 0/1, retry_after_ms, remaining whole tokens}.
BUCKET_LUA = """
local count, period, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local capacity = burst * period
local state = redis.call('HMGET', KEYS[1], 'level', 'ts')
local level = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
if now > ts then
  level = math.min(capacity, level + (now - ts) * count)
  ts = now
end
local need = cost * period
local allowed, retry = 0, 0
if level >= need then
  level = level - need
  allowed = 1
else
  retry = math.ceil((need - level) / count)
end
redis.call('HSET', KEYS[1], 'level', level, 'ts', ts)
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - level) / count) + 1000)
return {allowed, retry, math.floor(level / period)}
"""

_UNITS_MS = {"ms": 1, "s": 1000, "sec": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "hour": 3_600_000}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class Rate:
    """`count` tokens every `period_ms`, at most `burst` saved up."""

    count: int
    period_ms: int
    burst: int

    @classmethod
    def parse(cls, text: str, burst: int | None = None, field: str = "API_RATE_LIMIT") -> Rate:
        """`100/s`, `6000/min`, `10/5s`, `1/h`; burst defaults to the count (one period's worth)."""
        match = _RATE.match(text.lower())
        if not match or match.group(3) not in _UNITS_MS:
            raise ValueError(f"{field}: {text!r} is not a rate like 100/s, 6000/min or 10/5s")
        count = int(match.group(1))
        period_ms = int(match.group(2) or 1) * _UNITS_MS[match.group(3)]
        size = count if burst is None else burst
        if count < 1 or period_ms < 1 or size < 1:
            raise ValueError(f"{field}: count, period and burst must be at least 1")
        return cls(count=count, period_ms=period_ms, burst=size)


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    retry_after_ms: int  # 0 when allowed
    remaining: int  # whole tokens left after this check

    @property
    def retry_after_s(self) -> int:
        """For the `Retry-After` header: whole seconds, rounded up, at least 1 when refused."""
        return 0 if self.allowed else max(1, math.ceil(self.retry_after_ms / 1000))


def bucket_key(prefix: str, identity: str) -> str:
    return Keys(prefix).rate_bucket(hashlib.sha256(identity.encode()).hexdigest()[:32])


def _decision(reply: Any) -> RateDecision:
    allowed, retry, remaining = (int(v) for v in reply)
    return RateDecision(allowed=allowed == 1, retry_after_ms=retry, remaining=remaining)


class RateLimiter:
    """For sync clients (tests, CLI tools)."""

    def __init__(self, client: redis.Redis, rate: Rate, prefix: str = "qs") -> None:
        self._script = client.register_script(BUCKET_LUA)
        self._rate = rate
        self._prefix = prefix

    def check(self, identity: str, cost: int = 1) -> RateDecision:
        key = bucket_key(self._prefix, identity)
        r = self._rate
        return _decision(self._script(keys=[key], args=[r.count, r.period_ms, r.burst, cost]))


class AsyncRateLimiter:
    """For the API (redis.asyncio client): one EVALSHA per request."""

    def __init__(self, client: aioredis.Redis, rate: Rate, prefix: str = "qs") -> None:
        self._script = client.register_script(BUCKET_LUA)
        self._rate = rate
        self._prefix = prefix

    @property
    def rate(self) -> Rate:
        return self._rate

    async def check(self, identity: str, cost: int = 1) -> RateDecision:
        key = bucket_key(self._prefix, identity)
        r = self._rate
        return _decision(await self._script(keys=[key], args=[r.count, r.period_ms, r.burst, cost]))
