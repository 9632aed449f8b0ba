"""Dashboard sessions in Redis (the cookie and its signature are the API's: api/dashboard/auth.py).

    Keys.session(id)  hash  role, csrf, created_at; expires `ttl_s` after its last use (sliding)

A session is written in one MULTI (the hash and its expiry together, so no session lives without
one) and read with its expiry renewed; nothing else touches these keys.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from queue_system.storage.keys import Keys


class AsyncSessionStore:
    """The sessions of the dashboard, for the API (redis.asyncio client)."""

    def __init__(self, client: aioredis.Redis, keys: Keys | None = None) -> None:
        self._client = client
        self._keys = keys or Keys()

    async def open(self, session_id: str, role: str, csrf: str, *, now_ms: int, ttl_s: int) -> None:
        key = self._keys.session(session_id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"role": role, "csrf": csrf})
            pipe.hset(key, "created_at", str(now_ms))
            pipe.expire(key, ttl_s)
            await pipe.execute()

    async def touch(self, session_id: str, ttl_s: int) -> tuple[str, str] | None:
        """-> (role, csrf) of a live session, its expiry pushed `ttl_s` ahead; None: no session."""
        key = self._keys.session(session_id)
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hmget(key, ["role", "csrf"])
            pipe.expire(key, ttl_s)
            (role, csrf), _ = await pipe.execute()
        if role is None or csrf is None:
            return None
        return str(role), str(csrf)

    async def close(self, session_id: str) -> None:
        await self._client.delete(self._keys.session(session_id))
