"""Dashboard sessions in Redis (the cookie and its signature are the API's: api/dashboard/auth.py).

    Keys.session(id)  hash  role, csrf, created_at; expires `ttl_s` after its last use (sliding)

Each change is one script (as every state change in Redis is): a session is written with its
expiry, so none lives without one, and read with its expiry renewed. Nothing else touches these keys.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from queue_system.storage.keys import Keys

# KEYS[1] the session hash.  ARGV[1] role  ARGV[2] csrf  ARGV[3] created_at (epoch ms)  ARGV[4] ttl_s
# Returns nothing.
OPEN_LUA = """
redis.call('HSET', KEYS[1], 'role', ARGV[1], 'csrf', ARGV[2], 'created_at', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
"""

# KEYS[1] the session hash.  ARGV[1] ttl_s
# Returns {role, csrf}, nil for an absent field; the expiry is renewed (a no-op on no session).
TOUCH_LUA = """
local found = redis.call('HMGET', KEYS[1], 'role', 'csrf')
redis.call('EXPIRE', KEYS[1], ARGV[1])
return found
"""


class AsyncSessionStore:
    """The sessions of the dashboard, for the API (redis.asyncio client)."""

    def __init__(self, client: aioredis.Redis, keys: Keys | None = None) -> None:
        self._client = client
        self._keys = keys or Keys()
        self._open = client.register_script(OPEN_LUA)
        self._touch = client.register_script(TOUCH_LUA)

    async def open(self, session_id: str, role: str, csrf: str, *, now_ms: int, ttl_s: int) -> None:
        await self._open(keys=[self._keys.session(session_id)], args=[role, csrf, now_ms, ttl_s])

    async def touch(self, session_id: str, ttl_s: int) -> tuple[str, str] | None:
        """-> (role, csrf) of a live session, its expiry pushed `ttl_s` ahead; None: no session."""
        found: list[Any] = await self._touch(keys=[self._keys.session(session_id)], args=[ttl_s])
        role, csrf = found
        if role is None or csrf is None:
            return None
        return str(role), str(csrf)

    async def close(self, session_id: str) -> None:
        await self._client.delete(self._keys.session(session_id))
