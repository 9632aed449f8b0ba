"""The dashboard's session store (storage/sessions.py) on a real Redis: the key, its fields, its expiry."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis
import redis.asyncio as aioredis

from queue_system.storage.keys import Keys
from queue_system.storage.sessions import AsyncSessionStore

T = TypeVar("T")
KEY = Keys().session("s1")


def run(redis_url: str, call: Callable[[AsyncSessionStore], Awaitable[T]]) -> T:
    async def go() -> T:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            return await call(AsyncSessionStore(client))
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_a_session_is_one_hash_with_an_expiry(redis_client: redis.Redis, redis_url: str) -> None:
    run(redis_url, lambda s: s.open("s1", "write", "tok", now_ms=1_234, ttl_s=600))
    assert redis_client.hgetall(KEY) == {"role": "write", "csrf": "tok", "created_at": "1234"}
    assert 590 <= int(redis_client.ttl(KEY)) <= 600  # type: ignore[arg-type]


def test_reading_a_session_renews_its_expiry(redis_client: redis.Redis, redis_url: str) -> None:
    run(redis_url, lambda s: s.open("s1", "read", "tok", now_ms=1, ttl_s=5))
    assert run(redis_url, lambda s: s.touch("s1", 600)) == ("read", "tok")
    assert int(redis_client.ttl(KEY)) > 5  # type: ignore[arg-type]


def test_no_session_reads_as_none_and_leaves_no_key(redis_client: redis.Redis, redis_url: str) -> None:
    assert run(redis_url, lambda s: s.touch("nobody", 600)) is None
    assert redis_client.exists(Keys().session("nobody")) == 0
    redis_client.hset(KEY, "role", "write")  # a damaged record (no csrf) is no session either
    assert run(redis_url, lambda s: s.touch("s1", 600)) is None


def test_sign_out_deletes_the_session(redis_client: redis.Redis, redis_url: str) -> None:
    run(redis_url, lambda s: s.open("s1", "write", "tok", now_ms=1, ttl_s=600))
    run(redis_url, lambda s: s.close("s1"))
    assert redis_client.exists(KEY) == 0
