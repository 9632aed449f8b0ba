"""Building and finishing tasks through the real stores (a Redis URL or client in, domain types out)."""

from __future__ import annotations

import asyncio
import json

import redis
import redis.asyncio as aioredis

from queue_system.domain.models import Attempt, AttemptResult, Outcome, Task, TaskStatus
from queue_system.domain.retry import Decision
from queue_system.storage.keys import Keys
from queue_system.storage.task_store import RedisAsyncTaskStore
from queue_system.storage.types import Claim, Finished, MessageAck, NewTask, Skip
from queue_system.storage.worker_store import RedisTaskStore

K = Keys()


def create(
    redis_url: str, task_id: str, *, now: int = 1_000, due: int | None = None, type_: str = "webhook"
) -> bool:
    async def go() -> bool:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            created, _ = await RedisAsyncTaskStore(client).create(
                NewTask(
                    id=task_id,
                    type=type_,
                    queue="default",
                    payload_json='{"url":"http://x"}',
                    fingerprint="fp",
                    now=now,
                    due=due,
                )
            )
            return created
        finally:
            await client.aclose()

    return asyncio.run(go())


def get(redis_url: str, task_id: str) -> Task | None:
    """The task as the API reads it."""

    async def go() -> Task | None:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            return await RedisAsyncTaskStore(client).get(task_id)
        finally:
            await client.aclose()

    return asyncio.run(go())


def attempt(n: int = 1) -> Attempt:
    return Attempt(n=n, started_at=1_000, duration_ms=5, outcome=Outcome.SUCCESS, status_code=200)


def claimed(task_id: str, token: int, dest: str | None = None) -> Task:
    """A task as its claim returned it (what finish is given)."""
    return Task(
        id=task_id,
        type="webhook",
        payload=None,
        status=TaskStatus.PROCESSING,
        queue="default",
        attempts=1,
        created_at=1_000,
        updated_at=1_000,
        token=token,
        dest=dest,
    )


def finish_with(
    store: RedisTaskStore,
    task_id: str,
    token: int,
    decision: Decision,
    result: AttemptResult,
    *,
    now: int = 2_000,
    n: int = 1,
    ack: MessageAck | None = None,
    dest: str | None = None,
) -> Finished:
    return store.finish(
        claimed(task_id, token, dest), attempt(n), decision, result, now=now, retention_ms=60_000, ack=ack
    )


def finish(
    store: RedisTaskStore,
    task_id: str,
    token: int,
    status: TaskStatus,
    *,
    now: int = 2_000,
    next_at: int | None = None,
) -> bool:
    if status is TaskStatus.COMPLETED:
        result = AttemptResult(Outcome.SUCCESS, result=1)
    else:
        result = AttemptResult(Outcome.TRANSIENT, error="HTTP 503")
    return finish_with(store, task_id, token, Decision(status, next_at), result, now=now).recorded


def ok(claim: Claim | Skip) -> Task:
    assert isinstance(claim, Claim), claim
    return claim.task


def queued_messages(client: redis.Redis) -> list[dict[str, object]]:
    ids: list[str] = client.lrange(K.queue("default"), 0, -1)  # type: ignore[assignment]
    raw: list[str] = [client.hget(K.queue("default") + ".msgs", mid) for mid in ids]  # type: ignore[misc]
    return [json.loads(text) for text in raw]


def lose_message(client: redis.Redis, task_id: str, token: int) -> None:
    """What Dramatiq's nack does when it dead-letters a message: the body leaves the queue."""
    mid = f"{task_id}#{token}"
    client.lrem(K.queue("default"), 0, mid)
    client.hdel(K.queue("default") + ".msgs", mid)
