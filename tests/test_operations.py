"""Bulk operations on a real Redis: each action and each filter, the cursor, the lease, `rate`.

Tasks are made by the storage scripts themselves (tests/bulk_support.py); an operation is started
by its create script and stepped by its step script, with explicit clocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from queue_system.domain.operations import BulkAction, Operation, OperationState, TaskFilter
from queue_system.service.observe import NullObserver
from queue_system.service.operations import RunnerConfig, run_due
from queue_system.storage.keys import Keys
from queue_system.storage.operations import AsyncOperationStore, OperationStore
from tests.bulk_support import Seed, seed_tasks, status_of

K = Keys()
T0 = 1_000_000  # the operations start here; seeded tasks are created before
RETENTION = 60_000


def start(
    redis_url: str,
    action: BulkAction,
    flt: TaskFilter,
    *,
    rate: int = 1_000_000,
    at: int = T0,
    oid: str = "op",
) -> tuple[str, int]:
    async def go() -> tuple[str, int]:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            op = Operation(oid, action, {"f": 1}, OperationState.RUNNING, rate, at, at)
            return await AsyncOperationStore(client, K).create(op, flt, RETENTION)
        finally:
            await client.aclose()

    return asyncio.run(go())


def cancel(redis_url: str, oid: str, now: int) -> str:
    async def go() -> str:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            return await AsyncOperationStore(client, K).cancel(oid, now, RETENTION)
        finally:
            await client.aclose()

    return asyncio.run(go())


@pytest.fixture
def ops(redis_client: redis.Redis) -> Iterator[OperationStore]:
    yield OperationStore(redis_client, K)


def step(
    ops: OperationStore,
    now: int,
    *,
    runner: str = "r1",
    actions: int = 250,
    examined: int = 2_000,
    oid: str = "op",
) -> Any:
    return ops.step(
        oid, runner, now, lease_ms=5_000, max_actions=actions, max_examined=examined,
        task_retention_ms=RETENTION, retention_ms=RETENTION, burst_ms=1_000,
    )  # fmt: skip


def run_to_end(ops: OperationStore, now: int = T0 + 1_000, oid: str = "op", **kw: Any) -> Operation:
    for i in range(10_000):
        s = step(ops, now + i, oid=oid, **kw)
        if s.finished or (not s.ran and s.reason == "over"):
            break
    op = ops.get(oid)
    assert op is not None
    return op


def ttl(client: redis.Redis) -> int:
    return int(str(client.pttl(K.op("op"))))


def statuses(client: redis.Redis, ids: list[str]) -> dict[str, str | None]:
    return {i: status_of(client, i) for i in ids}


MIXED = [
    Seed("f1", "failed", 100),
    Seed("f2", "failed", 200, type="email", url=None),
    Seed("f3", "failed", 300, queue="priority"),
    Seed("f4", "failed", 400, url="http://other.test:80/x"),
    Seed("f5", "failed", 500, url="http://127.0.0.1:9/other"),
    Seed("f6", "failed", 600, schedule_id="s1"),
    Seed("c1", "cancelled", 700),
    Seed("d1", "completed", 800),
    Seed("p1", "pending", 900),
    Seed("s1", "scheduled", 1_000),
    Seed("w1", "processing", 1_100),
]
IDS = [s.id for s in MIXED]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (TaskFilter(statuses=("failed",)), {"f1", "f2", "f3", "f4", "f5", "f6"}),
        (TaskFilter(statuses=("failed", "cancelled")), {"f1", "f2", "f3", "f4", "f5", "f6", "c1"}),
        (TaskFilter(statuses=("failed",), type="email"), {"f2"}),
        (TaskFilter(type="email"), {"f2"}),
        (TaskFilter(statuses=("failed",), queue="priority"), {"f3"}),
        (TaskFilter(destination="http://other.test:80"), {"f4"}),
        (TaskFilter(endpoint="http://127.0.0.1:9/other"), {"f5"}),
        (TaskFilter(schedule_id="s1"), {"f6"}),
        (TaskFilter(statuses=("failed",), created_after=300, created_before=500), {"f3", "f4", "f5"}),
        (TaskFilter(all=True), {"f1", "f2", "f3", "f4", "f5", "f6", "c1"}),
    ],
)
def test_retry_acts_on_exactly_what_the_filter_matches(
    flt: TaskFilter, expected: set[str], redis_client: redis.Redis, redis_url: str, ops: OperationStore
) -> None:
    seed_tasks(redis_client, MIXED)
    before = statuses(redis_client, IDS)
    assert start(redis_url, BulkAction.RETRY, flt)[0] == "ok"
    op = run_to_end(ops)
    after = statuses(redis_client, IDS)
    changed = {i for i in IDS if after[i] != before[i]}
    assert changed == expected
    assert all(after[i] == "pending" for i in changed)
    for i in changed:
        assert redis_client.hget(K.task(i), "trigger") == "manual"
    assert op.state is OperationState.DONE and op.done == len(expected)
    # Under `all`, the others are walked, matched and skipped (their status allows no retry).
    assert op.failed == 0 and op.matched == op.done + op.skipped


def test_cancel_skips_what_is_no_longer_waiting(
    redis_client: redis.Redis, redis_url: str, ops: OperationStore
) -> None:
    seed_tasks(redis_client, MIXED)
    start(redis_url, BulkAction.CANCEL, TaskFilter(queue="default"))
    op = run_to_end(ops)
    after = statuses(redis_client, IDS)
    assert after["p1"] == after["s1"] == "cancelled"
    assert after["w1"] == "processing" and after["f1"] == "failed" and after["d1"] == "completed"
    assert (op.done, op.skipped, op.failed) == (2, 8, 0)


def test_delete_removes_the_matching_tasks(
    redis_client: redis.Redis, redis_url: str, ops: OperationStore
) -> None:
    seed_tasks(redis_client, MIXED)
    start(redis_url, BulkAction.DELETE, TaskFilter(statuses=("failed", "completed")))
    op = run_to_end(ops)
    after = statuses(redis_client, IDS)
    assert {i for i in IDS if after[i] is None} == {"f1", "f2", "f3", "f4", "f5", "f6", "d1"}
    assert op.done == 7 and redis_client.zscore(K.index(), "f1") is None


def test_tasks_created_after_the_start_are_left_alone(
    redis_client: redis.Redis, redis_url: str, ops: OperationStore
) -> None:
    seed_tasks(redis_client, [Seed("old", "failed", T0 - 1)])
    start(redis_url, BulkAction.RETRY, TaskFilter(statuses=("failed",)))
    seed_tasks(redis_client, [Seed("new", "failed", T0 + 1)])
    run_to_end(ops)
    assert statuses(redis_client, ["old", "new"]) == {"old": "pending", "new": "failed"}


def test_ties_and_small_steps_act_on_each_task_once(
    redis_client: redis.Redis, redis_url: str, ops: OperationStore
) -> None:
    # 300 tasks in 3 milliseconds: the cursor resumes inside a run of equal scores.
    seeds = [Seed(f"t{i:03d}", "failed", 100 + i % 3) for i in range(300)]
    seed_tasks(redis_client, seeds)
    start(redis_url, BulkAction.RETRY, TaskFilter(statuses=("failed", "cancelled")))
    op = run_to_end(ops, actions=7, examined=11)
    assert op.done == 300 and op.examined == 300 and op.total == 300
    assert all(redis_client.hget(K.task(s.id), "token") == "2" for s in seeds)


def test_a_retried_task_that_failed_again_is_not_retried_twice(
    redis_client: redis.Redis, redis_url: str, ops: OperationStore
) -> None:
    seed_tasks(redis_client, [Seed(f"t{i}", "failed", 100 + i) for i in range(20)])
    start(redis_url, BulkAction.RETRY, TaskFilter(statuses=("failed",)))
    step(ops, T0 + 1, actions=5)
    # The five it retried fail again before the operation goes on.
    for i in range(5):
        redis_client.hset(K.task(f"t{i}"), "status", "failed")
        redis_client.zrem(K.index(status="pending"), f"t{i}")
        redis_client.zadd(K.index(status="failed"), {f"t{i}": 100 + i})
    op = run_to_end(ops)
    assert op.done == 20
    assert [redis_client.hget(K.task(f"t{i}"), "token") for i in range(20)] == ["2"] * 20


def test_one_runner_at_a_time_until_its_lease_expires(
    redis_client: redis.Redis, redis_url: str, ops: OperationStore
) -> None:
    seed_tasks(redis_client, [Seed(f"t{i}", "failed", 100 + i) for i in range(10)])
    start(redis_url, BulkAction.RETRY, TaskFilter(statuses=("failed",)))
    assert step(ops, T0 + 1, actions=3).acted == 3
    assert step(ops, T0 + 2, runner="r2").reason == "busy"
    assert step(ops, T0 + 1 + 5_001, runner="r2", actions=3).acted == 3  # r1's lease ran out
    assert step(ops, T0 + 5_003, runner="r1").reason == "busy"


def test_rate_is_a_token_bucket(redis_client: redis.Redis, redis_url: str, ops: OperationStore) -> None:
    seed_tasks(redis_client, [Seed(f"t{i}", "failed", 100 + i) for i in range(100)])
    start(redis_url, BulkAction.RETRY, TaskFilter(statuses=("failed",)), rate=10)
    assert step(ops, T0 + 500).acted == 5  # half a second: five tokens
    waiting = step(ops, T0 + 550)
    assert waiting.reason == "wait" and 0 < waiting.wait_ms <= 100
    assert step(ops, T0 + 600).acted == 1
    assert step(ops, T0 + 60_000).acted == 10  # a long pause saves up `burst` (1 s) at most


def test_cancel_stops_it_and_keeps_what_it_did(
    redis_client: redis.Redis, redis_url: str, ops: OperationStore
) -> None:
    seed_tasks(redis_client, [Seed(f"t{i}", "failed", 100 + i) for i in range(10)])
    start(redis_url, BulkAction.RETRY, TaskFilter(statuses=("failed",)))
    step(ops, T0 + 1, actions=4)
    assert cancel(redis_url, "op", T0 + 2) == "ok"
    assert step(ops, T0 + 3).reason == "over"
    assert cancel(redis_url, "op", T0 + 4) == "cancelled"
    op = ops.get("op")
    assert op is not None and op.state is OperationState.CANCELLED and op.done == 4
    assert redis_client.zcard(K.ops_running) == 0 and 0 < ttl(redis_client) <= RETENTION


def test_a_finished_operation_expires_and_leaves_the_running_set(
    redis_client: redis.Redis, redis_url: str, ops: OperationStore
) -> None:
    seed_tasks(redis_client, [Seed("t", "failed", 100)])
    total = start(redis_url, BulkAction.RETRY, TaskFilter(statuses=("failed",)))
    assert total == ("ok", 1)
    op = run_to_end(ops)
    assert op.state is OperationState.DONE and op.progress == 1.0 and op.finished_at is not None
    assert redis_client.zcard(K.ops_running) == 0 and 0 < ttl(redis_client) <= RETENTION
    assert start(redis_url, BulkAction.RETRY, TaskFilter(all=True))[0] == "exists"


def test_run_due_steps_the_operation_a_free_lease_allows(
    redis_client: redis.Redis, redis_url: str, ops: OperationStore
) -> None:
    seed_tasks(redis_client, [Seed(f"t{i}", "failed", 100 + i) for i in range(600)])
    start(redis_url, BulkAction.RETRY, TaskFilter(statuses=("failed",)), oid="a")
    start(redis_url, BulkAction.CANCEL, TaskFilter(statuses=("pending",)), oid="b", at=T0 + 1)
    cfg = RunnerConfig(
        "r1", lease_ms=5_000, burst_ms=1_000, retention_ms=RETENTION, task_retention_ms=RETENTION
    )
    assert run_due(ops, cfg, T0 + 10_000) == 600  # a few steps in one call: a's tokens allow it
    other = RunnerConfig(
        "r2", lease_ms=5_000, burst_ms=1_000, retention_ms=RETENTION, task_retention_ms=RETENTION
    )
    run_due(ops, other, T0 + 10_001)  # a is done; b is free: r2 takes it
    b = ops.get("b")
    assert b is not None and b.state is OperationState.DONE


def test_run_due_reports_what_it_acted_on_by_action(
    redis_client: redis.Redis, redis_url: str, ops: OperationStore
) -> None:
    seen: list[tuple[str, int]] = []

    class Recording(NullObserver):
        def bulk_acted(self, action: str, count: int) -> None:
            seen.append((action, count))

    seed_tasks(redis_client, [Seed(f"t{i}", "pending", 100 + i) for i in range(7)])
    start(redis_url, BulkAction.CANCEL, TaskFilter(statuses=("pending",)))
    cfg = RunnerConfig(
        "r1", lease_ms=5_000, burst_ms=1_000, retention_ms=RETENTION, task_retention_ms=RETENTION
    )
    assert run_due(ops, cfg, T0 + 10_000, Recording()) == 7
    assert run_due(ops, cfg, T0 + 20_000, Recording()) == 0
    assert seen == [("cancel", 7)]


def test_a_step_that_raises_a_script_error_fails_the_operation(
    redis_client: redis.Redis, redis_url: str, ops: OperationStore
) -> None:
    seed_tasks(redis_client, [Seed("t", "failed", 100)])
    start(redis_url, BulkAction.RETRY, TaskFilter(statuses=("failed",)))
    redis_client.delete(K.index(status="failed"))
    redis_client.set(K.index(status="failed"), "not a zset")  # damaged data: WRONGTYPE
    cfg = RunnerConfig(
        "r1", lease_ms=5_000, burst_ms=1_000, retention_ms=RETENTION, task_retention_ms=RETENTION
    )
    assert run_due(ops, cfg, T0 + 10_000) == 0
    op = ops.get("op")
    assert op is not None and op.state is OperationState.FAILED and op.error and "WRONGTYPE" in op.error
    assert redis_client.zcard(K.ops_running) == 0
