"""Failed key checks per client address, shared by every API process and the worker masters'
GET /metrics: one Lua call per failure.

Key: `Keys.auth_failures(address)`, a hash {fails, window_end, locked_until, strikes}; the address
is hashed into the name, so no address can spell another key. `threshold` failures within `window_ms`
lock the address for `lockout_ms`, doubled with each lockout (its `strikes`) up to `max_lockout_ms`.
The record of an address that was locked expires STRIKE_MEMORY_MS after its lock ends, so one
that stops failing is forgotten; one never locked is forgotten when its window ends (a stranger
rotating addresses cannot fill Redis with day-long records of single guesses). Time comes from
Redis (TIME), so API hosts with skewed clocks agree.

Only failures are written: a valid key costs no call here (api/auth.py says how a lock is still
honoured in every process).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

from queue_system.storage.keys import Keys

# KEYS[1] the address's record.
# ARGV[1] op: 'fail' (count a failed check) or 'check' (read only)  ARGV[2] threshold
# ARGV[3] window_ms  ARGV[4] lockout_ms (the first lock)  ARGV[5] max_lockout_ms  ARGV[6] memory_ms
# A failure while locked is not counted (a locked address's keys are not checked at all).
# Returns {locked_ms: how long the address stays locked (0: not locked), fails in the window,
#          strikes: lockouts so far, new: 1 when this call locked it}.
FAILURE_LUA = """
local op, threshold, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local lockout, max_lockout, memory = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'fails', 'window_end', 'locked_until', 'strikes')
local fails, window_end = tonumber(state[1]) or 0, tonumber(state[2]) or 0
local locked_until, strikes = tonumber(state[3]) or 0, tonumber(state[4]) or 0
if locked_until > now or op ~= 'fail' then
  return {math.max(0, locked_until - now), fails, strikes, 0}
end
if window_end <= now then
  fails, window_end = 0, now + window
end
fails = fails + 1
local locked, new = 0, 0
if fails >= threshold then
  locked = math.min(lockout * 2 ^ strikes, max_lockout)
  strikes, fails, new = strikes + 1, 0, 1
  locked_until, window_end = now + locked, now
end
redis.call('HSET', KEYS[1], 'fails', fails, 'window_end', window_end, 'locked_until', locked_until,
  'strikes', strikes)
-- Strikes are remembered only for an address locked before: a stranger's single guesses cost
-- their window, not a day of memory each.
if strikes == 0 then memory = 0 end
redis.call('PEXPIRE', KEYS[1], math.max(window_end, locked_until) - now + memory)
return {locked, fails, strikes, new}
"""

STRIKE_MEMORY_MS = 24 * 3600 * 1000  # lockouts keep doubling for a day after the last one ends
MAX_LOCKOUT_MS = 3600 * 1000


@dataclass(frozen=True, slots=True)
class FailureLimit:
    """`threshold` failed checks in `window_ms` lock an address for `lockout_ms`, doubling."""

    threshold: int = 10
    window_ms: int = 60_000
    lockout_ms: int = 60_000
    max_lockout_ms: int = MAX_LOCKOUT_MS


@dataclass(frozen=True, slots=True)
class FailureState:
    locked_ms: int  # 0: not locked
    fails: int  # failures in the current window
    strikes: int  # lockouts so far (remembered for STRIKE_MEMORY_MS)
    new_lock: bool  # this failure locked the address

    @property
    def retry_after_s(self) -> int:
        """For `Retry-After`: whole seconds, rounded up, at least 1 when locked."""
        return max(1, math.ceil(self.locked_ms / 1000)) if self.locked_ms else 0


def _state(reply: Any) -> FailureState:
    locked, fails, strikes, new = (int(v) for v in reply)
    return FailureState(locked_ms=locked, fails=fails, strikes=strikes, new_lock=new == 1)


def _args(limit: FailureLimit) -> tuple[int, ...]:
    max_lockout = max(limit.lockout_ms, limit.max_lockout_ms)
    return (limit.threshold, limit.window_ms, limit.lockout_ms, max_lockout, STRIKE_MEMORY_MS)


class FailureThrottle:
    """For the worker master's GET /metrics (a blocking client): the same records as the API's."""

    def __init__(self, client: redis.Redis, limit: FailureLimit, keys: Keys | None = None) -> None:
        self._script = client.register_script(FAILURE_LUA)
        self._keys = keys or Keys()
        self.limit = limit
        self._args = _args(limit)

    def failed(self, address: str) -> FailureState:
        """Count one failed key check from `address`; -> its state after it."""
        key = self._keys.auth_failures(address)
        return _state(self._script(keys=[key], args=["fail", *self._args]))


class AsyncFailureThrottle:
    """For the API (redis.asyncio client)."""

    def __init__(self, client: aioredis.Redis, limit: FailureLimit, keys: Keys | None = None) -> None:
        self._script = client.register_script(FAILURE_LUA)
        self._keys = keys or Keys()
        self.limit = limit
        self._args = _args(limit)

    async def failed(self, address: str) -> FailureState:
        """Count one failed key check from `address`; -> its state after it."""
        return await self._call("fail", address)

    async def state(self, address: str) -> FailureState:
        """Read only: whether `address` is locked now (the dashboard asks before checking a key)."""
        return await self._call("check", address)

    async def _call(self, op: str, address: str) -> FailureState:
        key = self._keys.auth_failures(address)
        return _state(await self._script(keys=[key], args=[op, *self._args]))
