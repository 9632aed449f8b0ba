"""Webhook tasks for one test host and its endpoints, created through the API store."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from queue_system.storage.task_store import RedisAsyncTaskStore
from queue_system.storage.types import NewTask

D = "http://127.0.0.1:9"  # the host
E = f"{D}/x"  # an endpoint of it
E2 = f"{D}/y"  # another endpoint of the same host


def run_async(redis_url: str, call: object) -> object:
    async def go() -> object:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            return await call(RedisAsyncTaskStore(client))  # type: ignore[operator]
        finally:
            await client.aclose()

    return asyncio.run(go())


def create(redis_url: str, *ids: str, now: int = 1_000, dest: str = D, endpoint: str | None = E) -> None:
    """Webhook tasks for host `dest` and `endpoint` (None: a task stored before endpoints)."""

    async def go(s: RedisAsyncTaskStore) -> None:
        extra = {"dest": dest} | ({"ep": endpoint.removeprefix(dest)} if endpoint is not None else {})
        for task_id in ids:
            await s.create(
                NewTask(
                    id=task_id,
                    type="webhook",
                    queue="default",
                    payload_json='{"url":"http://127.0.0.1:9/x"}',
                    fingerprint="fp",
                    now=now,
                    extra=extra,
                )
            )

    run_async(redis_url, go)
