"""A model test of bulk operations (Hypothesis, stateful): random tasks and statuses, one operation
at a time with a random filter and action, stepped in random bounded steps by several runners that
"crash" (their lease expires and another runner takes over), while tasks it already retried fail
again. However the steps fall, each task the filter matched is acted on exactly once and every
other task is untouched. Real Redis, the real scripts.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import redis
import redis.asyncio as aioredis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from queue_system.domain.models import TaskStatus
from queue_system.domain.operations import BulkAction, Operation, OperationState, TaskFilter
from queue_system.storage.keys import Keys
from queue_system.storage.operations import AsyncOperationStore, OperationStore
from queue_system.storage.types import Claim
from queue_system.storage.worker_store import RedisTaskStore
from tests.bulk_support import Seed, _finish, seed_tasks

K = Keys()
LEASE = 1_000
STATUSES = ["failed", "cancelled", "pending", "scheduled", "completed", "processing"]
WAITING = {"pending", "scheduled", "retrying"}
URLS = ["http://a.test:80/x", "http://a.test:80/y", "http://b.test:80/x", None]

seeds = st.lists(
    st.builds(
        lambda i, status, created, type_, queue, url, sched: Seed(
            f"t{i}", status, created, type_, queue, url, sched
        ),
        st.integers(0, 10_000),
        st.sampled_from(STATUSES),
        st.integers(100, 110),  # few distinct times: many ties
        st.sampled_from(["webhook", "echo"]),
        st.sampled_from(["default", "priority"]),
        st.sampled_from(URLS),
        st.sampled_from([None, "s1"]),
    ),
    min_size=1,
    max_size=40,
    unique_by=lambda s: s.id,
)
filters = st.builds(
    TaskFilter,
    statuses=st.lists(st.sampled_from(STATUSES), max_size=2, unique=True).map(tuple),
    type=st.sampled_from([None, None, "webhook", "echo"]),
    queue=st.sampled_from([None, None, None, "priority"]),
    destination=st.sampled_from([None, None, None, "http://a.test:80"]),
    endpoint=st.sampled_from([None, None, None, "http://a.test:80/x"]),
    schedule_id=st.sampled_from([None, None, None, "s1"]),
    created_after=st.sampled_from([None, None, 103]),
    created_before=st.sampled_from([None, None, 107]),
)


def matches(flt: TaskFilter, s: Seed) -> bool:
    dest = s.url.rsplit("/", 1)[0] if s.url else None
    return (
        (not flt.statuses or s.status in flt.statuses)
        and (flt.type is None or s.type == flt.type)
        and (flt.queue is None or s.queue == flt.queue)
        and (flt.destination is None or dest == flt.destination)
        and (flt.endpoint is None or s.url == flt.endpoint)
        and (flt.schedule_id is None or s.schedule_id == flt.schedule_id)
        and (flt.created_after is None or s.created_at >= flt.created_after)
        and (flt.created_before is None or s.created_at <= flt.created_before)
    )


def allowed(action: BulkAction, status: str) -> bool:
    if action is BulkAction.RETRY:
        return status in ("failed", "cancelled")
    if action is BulkAction.CANCEL:
        return status in WAITING
    return True


class Operations(RuleBasedStateMachine):
    def __init__(self, redis_url: str) -> None:
        super().__init__()
        self.url = redis_url
        self.client = redis.Redis.from_url(redis_url, decode_responses=True)
        self.client.flushdb()
        self.ops = OperationStore(self.client, K)
        self.tasks = RedisTaskStore(self.client, K)
        self.now = 1_000_000
        self.seeds: dict[str, Seed] = {}
        self.n = 0
        self.op: tuple[str, BulkAction, TaskFilter, dict[str, dict[str, Any]]] | None = None
        self.refailed: set[str] = set()

    def teardown(self) -> None:
        self.tasks.close()
        self.client.flushdb()
        self.client.close()

    def _state(self, tid: str) -> dict[str, Any]:
        return {
            "status": self.client.hget(K.task(tid), "status"),
            "token": self.client.hget(K.task(tid), "token"),
        }

    @precondition(lambda self: self.op is None)
    @rule(new=seeds)
    def add_tasks(self, new: list[Seed]) -> None:
        fresh = [s for s in new if s.id not in self.seeds]
        seed_tasks(self.client, fresh)
        self.seeds.update({s.id: s for s in fresh})

    @precondition(lambda self: self.op is None and bool(self.seeds))
    @rule(action=st.sampled_from(list(BulkAction)), flt=filters)
    def start(self, action: BulkAction, flt: TaskFilter) -> None:
        self.n += 1
        oid = f"op{self.n}"
        before = {tid: self._state(tid) for tid in self.seeds}

        async def go() -> None:
            client = aioredis.Redis.from_url(self.url, decode_responses=True)
            try:
                op = Operation(oid, action, {}, OperationState.RUNNING, 1_000_000, self.now, self.now)
                assert (await AsyncOperationStore(client, K).create(op, flt, 60_000))[0] == "ok"
            finally:
                await client.aclose()

        asyncio.run(go())
        self.op = (oid, action, flt, before)
        self.refailed = set()

    @precondition(lambda self: self.op is not None)
    @rule(runner=st.sampled_from(["r1", "r2", "r3"]), actions=st.integers(1, 15), examined=st.integers(1, 25))
    def step(self, runner: str, actions: int, examined: int) -> None:
        assert self.op is not None
        self.now += 50
        out = self.ops.step(
            self.op[0], runner, self.now, lease_ms=LEASE, max_actions=actions, max_examined=examined,
            task_retention_ms=60_000, retention_ms=60_000, burst_ms=1_000,
        )  # fmt: skip
        assert out.ran or out.reason in ("busy", "over")
        if out.ran:
            assert out.acted <= actions and out.examined <= examined
        if out.reason == "over" or out.finished:
            self._check_and_end()

    @precondition(lambda self: self.op is not None)
    @rule()
    def crash(self) -> None:
        """The runner holding the lease dies: after the lease, another may take over."""
        self.now += LEASE + 1

    @precondition(lambda self: self.op is not None and self.op[1] is BulkAction.RETRY)
    @rule(data=st.data())
    def a_retried_task_fails_again(self, data: st.DataObject) -> None:
        assert self.op is not None
        before = self.op[3]
        retried = sorted(  # retried by this operation (one more token), and pending again
            t for t in self.seeds if t not in self.refailed and before[t]["token"] is not None
            and self._state(t) == {"status": "pending", "token": str(int(before[t]["token"]) + 1)}
        )  # fmt: skip
        if not retried:
            return
        tid = data.draw(st.sampled_from(retried))
        token = int(str(self.client.hget(K.task(tid), "token")))
        claimed = self.tasks.claim(tid, token, self.now, self.now + 10**9)
        if isinstance(claimed, Claim):  # (a parked one waits for its destination: left pending)
            _finish(self.tasks, claimed, TaskStatus.FAILED, self.now)
            self.refailed.add(tid)

    def _check_and_end(self) -> None:
        assert self.op is not None
        oid, action, flt, before = self.op
        op = self.ops.get(oid)
        assert op is not None and op.state is OperationState.DONE
        acted = 0
        for tid, seed in self.seeds.items():
            was, now = before[tid], self._state(tid)
            live = was["status"] is not None
            hit = live and matches(flt, replace(seed, status=str(was["status"])))
            if not hit:
                assert now == was, (tid, seed, flt, was, now)
                continue
            if not allowed(action, str(was["status"])):
                assert now == was, (tid, "skipped", was, now)
                continue
            acted += 1
            if action is BulkAction.RETRY:
                assert now["token"] == str(int(was["token"]) + 1), (tid, "retried once", was, now)
            elif action is BulkAction.CANCEL:
                assert now["status"] == "cancelled", (tid, was, now)
            else:
                assert now["status"] is None, (tid, was, now)
        assert op.done == acted, (op, acted)
        self.op = None

    @invariant()
    def counters_add_up(self) -> None:
        if self.op is not None:
            op = self.ops.get(self.op[0])
            assert op is not None and op.matched == op.done + op.skipped + op.failed <= op.examined


def test_each_matching_task_is_acted_on_exactly_once(redis_url: str, redis_client: redis.Redis) -> None:
    class Bound(Operations):
        def __init__(self) -> None:
            super().__init__(redis_url)

    run_state_machine_as_test(
        Bound,
        settings=settings(
            max_examples=30, stateful_step_count=60, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )  # fmt: skip
