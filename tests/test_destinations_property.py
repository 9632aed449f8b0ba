"""A model-based test of the two destination levels (domain/destinations.py) on a real Redis.

Hypothesis drives the worker's own scripts (claim, finish, unclaim, renew, reclaim, promote, wake)
through any interleaving of message deliveries, attempt outcomes (an answer, a 5xx, a response
timeout, a refused connection, an unsendable request), lost workers and time passing, for tasks
on several endpoints of one host. After every step:

- neither cap is exceeded: live slots of the host <= WEBHOOK_MAX_INFLIGHT_PER_HOST, of each
  endpoint <= its bound;
- one endpoint's 5xx and timeouts never open another endpoint's breaker, nor the host's; the
  host's opens only on host-level failures, and is open (or probing) once they reach the threshold
  in a row; an endpoint likewise with its own;
- every host and endpoint key has its owner (the reconciler's idle sweep would miss it else);
- no task is lost: each waiting task is parked under exactly the one level its record names, or in
  the schedule, or has its current message queued; each processing one has a lease.

At the end every task is driven to a final status with healthy answers: each parked task is woken.
`make test` runs a bounded number of examples; `make fuzz` (QS_FUZZ=1) many more, longer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from queue_system.domain.breaker import breaker_signal
from queue_system.domain.destinations import DestinationLimits, Signal
from queue_system.domain.models import AttemptResult, Outcome, Task, TaskStatus
from queue_system.domain.retry import Decision
from queue_system.storage.keys import Keys
from queue_system.storage.types import Claim
from queue_system.storage.worker_store import RedisTaskStore
from tests.support.destinations import D, create
from tests.support.model import TIMEOUT, model_settings
from tests.support.store import finish_with

SETTINGS = model_settings(30, 40)
pytestmark = TIMEOUT

K = Keys()
ENDPOINTS = [f"{D}/e{i}" for i in range(3)]
TASKS_PER_ENDPOINT = 4
LIMITS = DestinationLimits(
    max_inflight=3,
    breaker_threshold=2,
    cooldown_ms=1_000,
    max_cooldown_ms=4_000,
    hold_ms=5_000,
    max_inflight_per_endpoint=2,
)
LEASE_MS = 10_000
OUTCOMES = {
    "up": AttemptResult(Outcome.SUCCESS, result=1, status_code=200),
    "5xx": AttemptResult(Outcome.TRANSIENT, error="HTTP 500", status_code=500),
    "timeout": AttemptResult(Outcome.TRANSIENT, error="timeout after 1s"),
    "refused": AttemptResult(Outcome.TRANSIENT, error="ConnectError: refused", connect_failed=True),
    "unsendable": AttemptResult(Outcome.PERMANENT, error="unsendable request", about_destination=False),
}


@dataclass
class Streaks:
    """The model of one breaker: failures of its level in a row, and whether it ever had one."""

    in_a_row: int = 0
    ever: bool = False


@dataclass
class World:
    now: int = 10_000
    running: dict[str, Task] = field(default_factory=dict)  # claimed, its worker alive
    host: Streaks = field(default_factory=Streaks)
    endpoint: dict[str, Streaks] = field(default_factory=lambda: {e: Streaks() for e in ENDPOINTS})


class Destinations(RuleBasedStateMachine):
    def __init__(self, client: redis.Redis, redis_url: str) -> None:
        super().__init__()
        client.flushdb()
        self.client = client
        self.store = RedisTaskStore(client, limits=LIMITS)
        self.w = World()
        self.tasks: dict[str, str] = {}  # id -> endpoint
        for e in ENDPOINTS:
            ids = [f"{e.rsplit('/', 1)[1]}-{i}" for i in range(TASKS_PER_ENDPOINT)]
            create(redis_url, *ids, now=self.w.now, endpoint=e)
            self.tasks.update(dict.fromkeys(ids, e))

    def teardown(self) -> None:
        try:
            self.drain()  # every run ends with each task driven to a final status
        finally:
            self.store.close()

    # -- the worker's steps ----------------------------------------------------------------------

    def queued(self) -> list[str]:
        return self.client.lrange(K.queue("default"), 0, -1)  # type: ignore[return-value]

    def deliver(self, message_id: str) -> None:
        self.client.lrem(K.queue("default"), 1, message_id)
        body = self.client.hget(K.messages("default"), message_id)
        self.client.hdel(K.messages("default"), message_id)
        if body is None:
            return
        task_id, token = json.loads(body)["args"]  # type: ignore[arg-type]
        claimed = self.store.claim(task_id, token, self.w.now, self.w.now + LEASE_MS)
        if isinstance(claimed, Claim):
            assert claimed.task.endpoint == self.tasks[task_id]
            self.w.running[task_id] = claimed.task

    @precondition(lambda self: bool(self.queued()))
    @rule(pick=st.integers(0, 10**6))
    def deliver_a_message(self, pick: int) -> None:
        messages = self.queued()
        self.deliver(messages[pick % len(messages)])

    @precondition(lambda self: bool(self.w.running))
    @rule(pick=st.integers(0, 10**6), outcome=st.sampled_from(sorted(OUTCOMES)))
    def finish_an_attempt(self, pick: int, outcome: str) -> None:
        task_id = sorted(self.w.running)[pick % len(self.w.running)]
        task = self.w.running.pop(task_id)
        result = OUTCOMES[outcome]
        if result.outcome is Outcome.SUCCESS:
            decision = Decision(TaskStatus.COMPLETED)
        elif result.outcome is Outcome.PERMANENT:
            decision = Decision(TaskStatus.FAILED)
        else:
            decision = Decision(TaskStatus.RETRYING, self.w.now + 100)
        finished = finish_with(
            store=self.store,
            task_id=task_id,
            token=task.token,
            decision=decision,
            result=result,
            now=self.w.now,
            dest=D,
        )
        if finished.recorded:
            self.model_signal(self.tasks[task_id], breaker_signal(result))

    def model_signal(self, endpoint: str, signal: Signal) -> None:
        host, ep = self.w.host, self.w.endpoint[endpoint]
        if signal is Signal.UP:
            host.in_a_row = ep.in_a_row = 0
        elif signal is Signal.ENDPOINT_DOWN:
            host.in_a_row = 0
            ep.in_a_row, ep.ever = ep.in_a_row + 1, True
        elif signal is Signal.HOST_DOWN:
            host.in_a_row, host.ever = host.in_a_row + 1, True

    @precondition(lambda self: bool(self.w.running))
    @rule(pick=st.integers(0, 10**6))
    def give_one_back(self, pick: int) -> None:  # the delivery loop had no room (UNCLAIM)
        task_id = sorted(self.w.running)[pick % len(self.w.running)]
        self.store.unclaim(self.w.running.pop(task_id), self.w.now)

    @precondition(lambda self: bool(self.w.running))
    @rule(pick=st.integers(0, 10**6))
    def lose_a_worker(self, pick: int) -> None:  # its lease will expire: RECLAIM recovers it
        task_id = sorted(self.w.running)[pick % len(self.w.running)]
        del self.w.running[task_id]

    @rule(ms=st.sampled_from([10, 300, 1_000, 2_500, 6_000, 12_000]))
    def time_passes(self, ms: int) -> None:
        """The reconcilers' tick: renew the live workers' leases, recover lost ones, dispatch due
        retries, wake parked tasks."""
        self.w.now += ms
        now = self.w.now
        self.store.renew_leases(now + LEASE_MS, [(t.id, t.token) for t in self.w.running.values()])
        self.store.reclaim_expired(now, retention_ms=60_000)
        self.store.promote_due(now)
        self.store.wake_destinations(now)

    # -- what must hold after every step -----------------------------------------------------------

    def live(self, key: str) -> int:
        return int(self.client.zcount(key, f"({self.w.now}", "+inf"))  # type: ignore[arg-type]

    @invariant()
    def neither_cap_is_exceeded(self) -> None:
        assert self.live(K.dest_inflight(D)) <= LIMITS.max_inflight
        for e in ENDPOINTS:
            assert self.live(K.endpoint_inflight(e)) <= LIMITS.endpoint_cap, e

    def state(self, key: str) -> dict[str, str]:
        return self.client.hgetall(key)  # type: ignore[return-value]

    @invariant()
    def each_breaker_opens_on_its_own_failures_only(self) -> None:
        host = self.state(K.dest(D))
        if not self.w.host.ever:
            assert host.get("state", "closed") == "closed" and host.get("failures", "0") == "0", host
        if self.w.host.in_a_row >= LIMITS.breaker_threshold:
            assert host["state"] in ("open", "half_open"), (self.w.host, host)
        for e, model in self.w.endpoint.items():
            ep = self.state(K.endpoint(e))
            if not model.ever:  # others' 5xx, timeouts and refusals left it alone
                assert ep.get("state", "closed") == "closed" and ep.get("failures", "0") == "0", (e, ep)
            if model.in_a_row >= LIMITS.breaker_threshold:
                assert ep["state"] in ("open", "half_open"), (e, model, ep)

    @invariant()
    def every_key_has_its_owner(self) -> None:
        if self.client.exists(K.dest(D), K.dest_inflight(D), K.dest_parked(D)):
            assert self.client.zscore(K.dests, D) is not None
        for e in ENDPOINTS:
            if self.client.exists(K.endpoint(e), K.endpoint_inflight(e), K.endpoint_parked(e)):
                assert self.client.zscore(K.endpoints, e) is not None, e

    @invariant()
    def no_task_is_lost(self) -> None:
        queued = self.client.hgetall(K.messages("default"))
        current = {tuple(json.loads(body)["args"]) for body in queued.values()}  # type: ignore[union-attr]
        parked_sets = {("host", D): set(self.client.zrange(K.dest_parked(D), 0, -1))}  # type: ignore[arg-type]
        for e in ENDPOINTS:
            parked_sets["endpoint", e] = set(self.client.zrange(K.endpoint_parked(e), 0, -1))  # type: ignore[arg-type]
        for task_id, e in self.tasks.items():
            fields = self.state(K.task(task_id))
            status = fields["status"]
            where = {unit for unit, members in parked_sets.items() if task_id in members}
            if "parked" in fields:
                unit = (fields["parked_level"], D if fields["parked_level"] == "host" else e)
                assert where == {unit} and status in ("pending", "retrying"), (task_id, fields, where)
                continue
            assert not where, (task_id, fields, where)
            if status in ("pending", "retrying"):
                waits = self.client.zscore(K.schedule, task_id) is not None
                assert waits or (task_id, int(fields["token"])) in current, (task_id, fields)
            elif status == "processing":
                assert self.client.zscore(K.leases, task_id) is not None, (task_id, fields)

    # -- the end: healthy answers drain everything -------------------------------------------------

    def drain(self) -> None:
        for _ in range(400):
            if all(self.state(K.task(t))["status"] in ("completed", "failed") for t in self.tasks):
                return
            for message_id in self.queued():
                self.deliver(message_id)
            for task_id, task in list(self.w.running.items()):
                del self.w.running[task_id]
                finish_with(
                    self.store,
                    task_id,
                    task.token,
                    Decision(TaskStatus.COMPLETED),
                    OUTCOMES["up"],
                    now=self.w.now,
                    dest=D,
                )
            self.time_passes(1_000)
            self.neither_cap_is_exceeded()
            self.no_task_is_lost()
        stuck = {
            t: self.state(K.task(t))
            for t in self.tasks
            if self.state(K.task(t))["status"] not in ("completed", "failed")
        }
        raise AssertionError(f"tasks never finished: {stuck}")


@pytest.fixture
def client(redis_client: redis.Redis) -> Iterator[redis.Redis]:
    yield redis_client


def test_both_levels_agree_with_a_model_under_any_interleaving(client: redis.Redis, redis_url: str) -> None:
    class Run(Destinations):
        def __init__(self) -> None:
            super().__init__(client, redis_url)

    run_state_machine_as_test(Run, settings=SETTINGS)
