"""The status machine, as the storage scripts enforce it: every script, from every status, on a real
Redis. The table below is the truth (domain/models.py's docstring draws it); each script names the
statuses it accepts, so this test is what keeps the two in step.

Each case reaches its starting status through the scripts themselves, runs one script, and checks
the resulting status, and that the task sits in exactly that status's index. A parked task (its
webhook host or endpoint could not take it: storage/lua/destinations.lua) is pending or retrying
as before; the same table holds for it, at either level, except that no claim starts it, and it
sits in exactly one parked set, its level's, exactly while it is parked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import redis
import redis.asyncio as aioredis

from queue_system.domain.destinations import DestinationLimits
from queue_system.domain.models import AttemptResult, Outcome, TaskStatus
from queue_system.domain.retry import Decision
from queue_system.storage.keys import Keys
from queue_system.storage.task_store import RedisAsyncTaskStore
from queue_system.storage.types import ChangeResult
from queue_system.storage.worker_store import RedisTaskStore
from tests.support.destinations import E2, D, E
from tests.support.destinations import create as create_for_destination
from tests.support.store import create, finish_with

K = Keys()
PENDING, SCHEDULED, PROCESSING, RETRYING = "pending", "scheduled", "processing", "retrying"
COMPLETED, FAILED, CANCELLED, GONE = "completed", "failed", "cancelled", "gone"
LATER = 10**7  # past every lease, due time and retention the setup writes
RETENTION_MS = 60_000

# script -> {from: to}; a status not listed is left as it is.
EXPECTED: dict[str, dict[str, str]] = {
    "claim": {PENDING: PROCESSING, RETRYING: PROCESSING},
    "finish completed": {PROCESSING: COMPLETED},
    "finish retrying": {PROCESSING: RETRYING},
    "finish failed": {PROCESSING: FAILED},
    "promote": {SCHEDULED: PENDING},  # a due retrying task is dispatched and stays retrying
    "reclaim": {PROCESSING: RETRYING},  # the lease expired; after MAX_LOST_IN_A_ROW: failed
    "renew": {},
    "cancel": {PENDING: CANCELLED, SCHEDULED: CANCELLED, RETRYING: CANCELLED},
    "retry": {FAILED: PENDING, CANCELLED: PENDING},
    "redispatch": {},  # a new message, same status
    "wake": {},  # a parked task is dispatched again (new message), same status
    "sweep": {COMPLETED: GONE, FAILED: GONE, CANCELLED: GONE},
    "delete": {status.value: GONE for status in TaskStatus},
}


def _async(redis_url: str, call: Callable[[RedisAsyncTaskStore], object]) -> object:
    async def go() -> object:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            return await call(RedisAsyncTaskStore(client))  # type: ignore[misc]
        finally:
            await client.aclose()

    return asyncio.run(go())


def _finish(store: RedisTaskStore, status: TaskStatus, *, now: int, next_at: int | None = None) -> None:
    result = AttemptResult(Outcome.SUCCESS if status is TaskStatus.COMPLETED else Outcome.TRANSIENT)
    finish_with(store, "t", 1, Decision(status, next_at), result, now=now)


def _reach(status: str, store: RedisTaskStore, redis_url: str) -> None:
    """Task `t`, current token 1, in `status`, by way of the scripts."""
    create(redis_url, "t", now=1_000, due=50_000 if status == SCHEDULED else None)
    if status in (PROCESSING, RETRYING, COMPLETED, FAILED):
        store.claim("t", 1, 1_500, 9_000)
    if status in (RETRYING, COMPLETED, FAILED):
        _finish(store, TaskStatus(status), now=2_000, next_at=5_000 if status == RETRYING else None)
    if status == CANCELLED:
        _async(redis_url, lambda s: s.cancel("t", 2_000, RETENTION_MS))


def _finish_as(status: TaskStatus) -> Callable[[RedisTaskStore, str, str], object]:
    def run(store: RedisTaskStore, _status: str, _url: str) -> object:
        _finish(store, status, now=LATER, next_at=LATER + 1)
        return None

    return run


# script -> how to run it on task `t` (current token 1): (store, its status, redis_url)
RUN: dict[str, Callable[[RedisTaskStore, str, str], object]] = {
    "claim": lambda store, _, __: store.claim("t", 1, LATER, LATER + 10_000),
    "finish completed": _finish_as(TaskStatus.COMPLETED),
    "finish retrying": _finish_as(TaskStatus.RETRYING),
    "finish failed": _finish_as(TaskStatus.FAILED),
    "promote": lambda store, _, __: store.promote_due(LATER),
    "reclaim": lambda store, _, __: store.reclaim_expired(LATER, RETENTION_MS),
    "renew": lambda store, _, __: store.renew_leases(LATER + 10_000, [("t", 1)]),
    "cancel": lambda _, __, url: _async(url, lambda s: s.cancel("t", LATER, RETENTION_MS)),
    "retry": lambda _, __, url: _async(url, lambda s: s.retry("t", LATER)),
    "redispatch": lambda store, status, _: store.redispatch_stranded(TaskStatus(status), 0, LATER, 0),
    "sweep": lambda store, _, __: store.sweep(LATER),
    "wake": lambda store, _, __: store.wake_destinations(LATER),
    "delete": lambda _, __, url: _async(url, lambda s: s.delete("t")),
}


def _status(client: redis.Redis) -> str:
    status = client.hget(K.task("t"), "status")
    indexed = [s.value for s in TaskStatus if client.zscore(K.index(status=s.value), "t") is not None]
    assert indexed == ([status] if status else []), f"status {status}, in the indexes of {indexed}"
    return str(status) if status else GONE


def test_every_script_is_in_the_table() -> None:
    assert set(RUN) == set(EXPECTED)


@pytest.mark.parametrize("script", list(EXPECTED))
def test_every_script_from_every_status(script: str, redis_client: redis.Redis, redis_url: str) -> None:
    store = RedisTaskStore(redis_client)
    actual, expected = {}, {}
    try:
        for start in TaskStatus:
            redis_client.flushdb()
            _reach(start.value, store, redis_url)
            assert _status(redis_client) == start.value
            RUN[script](store, start.value, redis_url)
            actual[start.value] = _status(redis_client)
            expected[start.value] = EXPECTED[script].get(start.value, start.value)
    finally:
        store.close()
    assert actual == expected


def test_a_refused_change_names_the_status_that_refused(redis_client: redis.Redis, redis_url: str) -> None:
    store = RedisTaskStore(redis_client)
    try:
        _reach(PROCESSING, store, redis_url)
    finally:
        store.close()
    refused = _async(redis_url, lambda s: s.cancel("t", LATER, RETENTION_MS))
    assert isinstance(refused, ChangeResult) and refused.status is TaskStatus.PROCESSING


# One failure opens a breaker, for longer than LATER: a claim for it parks the task.
PARKING = DestinationLimits(breaker_threshold=1, cooldown_ms=10**8, max_cooldown_ms=10**8)
TIMEOUT = AttemptResult(Outcome.TRANSIENT, error="timeout")  # the endpoint's failure
REFUSED = AttemptResult(Outcome.TRANSIENT, error="ConnectError", connect_failed=True)  # the host's


def _reach_parked(status: str, level: str, store: RedisTaskStore, redis_url: str) -> None:
    """Task `t` (endpoint E of host D), parked under `level` (whose breaker is open), in `status`
    (pending|retrying). A host's breaker is opened by another endpoint's task: it holds them all."""
    create_for_destination(redis_url, "t", now=1_000)
    create_for_destination(redis_url, "f", now=1_000, endpoint=E if level == "endpoint" else E2)
    down = TIMEOUT if level == "endpoint" else REFUSED
    if status == PENDING:
        store.claim("f", 1, 1_500, 9_000)
        finish_with(store, "f", 1, Decision(TaskStatus.RETRYING, LATER * 2), down, now=2_000, dest=D)
        assert store.claim("t", 1, 2_100, 9_000).reason == "parked"  # type: ignore[union-attr]
    else:
        store.claim("t", 1, 1_500, 9_000)
        finish_with(store, "t", 1, Decision(TaskStatus.RETRYING, 3_000), down, now=2_000, dest=D)
        store.promote_due(3_000)
        assert store.claim("t", 2, 3_100, 9_000).reason == "parked"  # type: ignore[union-attr]


def _parked_consistently(client: redis.Redis, level: str) -> bool:
    """-> whether `t` is parked; it is in its level's parked set (and no other) exactly when its
    record says so."""
    fields: dict[str, str] = client.hgetall(K.task("t"))  # type: ignore[assignment]
    sets = {"host": K.dest_parked(D), "endpoint": K.endpoint_parked(E)}
    in_sets = {name for name, key in sets.items() if client.zscore(key, "t") is not None}
    assert in_sets == ({level} if "parked" in fields else set()), (fields, in_sets)
    assert not in_sets or fields["parked_level"] == level, fields
    assert not in_sets or fields["status"] in (PENDING, RETRYING), fields
    return bool(in_sets)


@pytest.mark.parametrize("level", ["host", "endpoint"])
@pytest.mark.parametrize("script", list(EXPECTED))
def test_every_script_from_a_parked_task(
    script: str, level: str, redis_client: redis.Redis, redis_url: str
) -> None:
    store = RedisTaskStore(redis_client, limits=PARKING)
    actual, expected = {}, {}
    try:
        for start in (PENDING, RETRYING):
            redis_client.flushdb()
            _reach_parked(start, level, store, redis_url)
            assert _status(redis_client) == start and _parked_consistently(redis_client, level)
            RUN[script](store, start, redis_url)
            still_parked = _parked_consistently(redis_client, level)
            actual[start] = (_status(redis_client), still_parked)
            after = start if script == "claim" else EXPECTED[script].get(start, start)
            expected[start] = (after, after == start)
    finally:
        store.close()
    assert actual == expected
