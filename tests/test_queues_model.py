"""A model-based test of queue pause: Hypothesis interleaves submits, pauses, resumes, message
deliveries (a worker's consumer fetching the head of the queue and claiming it), finishes (done, or
a retry due soon), promotions, the reconciler's release and its redispatch of lost messages, and
an operator's cancel, retry and delete of waiting (perhaps held) tasks, on a real Redis through the
real scripts, and checks against a plain model:

- nothing is claimed while its queue is paused (any message, fetched at any time);
- nothing is lost: every waiting task has a live message, is held, or waits in the schedule;
- nothing runs twice: a claim starts only a waiting task, and each task completes exactly once
  when everything is finally drained (a cancelled or deleted one never).

`make test` runs a bounded number of examples; QS_FUZZ=1 many more.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis
import redis.asyncio as aioredis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from queue_system.domain.models import Attempt, AttemptResult, Outcome, Task, TaskStatus
from queue_system.domain.retry import Decision
from queue_system.storage.keys import Keys
from queue_system.storage.queues import AsyncQueueStore, QueueStore
from queue_system.storage.task_store import RedisAsyncTaskStore
from queue_system.storage.types import Change, Claim, SkipReason
from queue_system.storage.worker_store import RedisTaskStore
from tests.support.model import TIMEOUT, model_settings
from tests.support.store import create

SETTINGS = model_settings(25, 40, suppress=[HealthCheck.too_slow])
pytestmark = TIMEOUT
K = Keys()
Q = "default"


class PauseModel(RuleBasedStateMachine):
    def __init__(self, client: redis.Redis, redis_url: str) -> None:
        super().__init__()
        client.flushdb()
        self.client = client
        self.url = redis_url
        self.store = RedisTaskStore(client)
        self.backstop = QueueStore(client, K)
        self.loop = asyncio.new_event_loop()
        self.aclient = aioredis.Redis.from_url(redis_url, decode_responses=True)
        self.queues = AsyncQueueStore(self.aclient, K)
        self.api = RedisAsyncTaskStore(self.aclient)
        self.now = 1_000
        self.paused = False
        self.waiting: set[str] = set()
        self.running: dict[str, Task] = {}
        self.completed: dict[str, int] = {}  # id -> completions
        self.cancelled: set[str] = set()
        self.deleted: set[str] = set()
        self.n = 0

    def tick(self) -> int:
        self.now += 10
        return self.now

    def teardown(self) -> None:
        try:
            self.drain()  # every run ends with each task driven to a final status
        finally:
            self.loop.run_until_complete(self.aclient.aclose())
            self.loop.close()
            self.store.close()

    @rule()
    def submit(self) -> None:
        tid = f"t{self.n}"
        self.n += 1
        create(self.url, tid, now=self.tick(), type_="echo")
        self.waiting.add(tid)

    @rule()
    def pause(self) -> None:
        self.loop.run_until_complete(self.queues.pause(Q, self.tick()))
        self.paused = True

    @rule()
    def resume(self) -> None:
        self.loop.run_until_complete(self.queues.resume(Q, self.tick()))
        self.paused = False

    @rule()
    def reconcile(self) -> None:
        now = self.tick()
        self.store.promote_due(now)
        self.backstop.release_resumed(now)

    @rule()
    def redispatch_lost(self) -> None:
        """The reconciler's recovery of lost messages: a held task has none and must stay held."""
        now = self.tick()
        for status in (TaskStatus.PENDING, TaskStatus.RETRYING):
            self.store.redispatch_stranded(status, 0, now, min_age_ms=0)

    @precondition(lambda self: bool(self.waiting))
    @rule(data=st.data())
    def cancel(self, data: Any) -> None:
        tid = data.draw(st.sampled_from(sorted(self.waiting)))
        done = self.loop.run_until_complete(self.api.cancel(tid, self.tick(), 10**9))
        assert done.change is Change.DONE, (tid, done)
        self.waiting.discard(tid)
        self.cancelled.add(tid)

    @precondition(lambda self: bool(self.cancelled))
    @rule(data=st.data())
    def retry_cancelled(self, data: Any) -> None:
        tid = data.draw(st.sampled_from(sorted(self.cancelled)))
        done = self.loop.run_until_complete(self.api.retry(tid, self.tick()))
        assert done.change is Change.DONE, (tid, done)
        self.cancelled.discard(tid)
        self.waiting.add(tid)

    @precondition(lambda self: bool(self.waiting | self.cancelled))
    @rule(data=st.data())
    def delete(self, data: Any) -> None:
        tid = data.draw(st.sampled_from(sorted(self.waiting | self.cancelled)))
        assert self.loop.run_until_complete(self.api.delete(tid))
        self.waiting.discard(tid)
        self.cancelled.discard(tid)
        self.deleted.add(tid)

    def _fetch(self) -> tuple[str, int] | None:
        mid = self.client.lpop(K.queue(Q))
        if mid is None:
            return None
        self.client.hdel(K.messages(Q), str(mid))  # fetched and (after the claim) acked
        tid, token = str(mid).rsplit("#", 1)
        return tid, int(token)

    @rule()
    def deliver(self) -> None:
        fetched = self._fetch()
        if fetched is None:
            return
        tid, token = fetched
        now = self.tick()
        got = self.store.claim(tid, token, now, now + 10**9)
        if isinstance(got, Claim):
            assert not self.paused, f"{tid} claimed while its queue was paused"
            assert tid in self.waiting, f"{tid} claimed while not waiting"
            self.waiting.discard(tid)
            self.running[tid] = got.task
        elif got.reason is SkipReason.PAUSED:
            assert self.paused and tid in self.waiting
        elif got.reason is SkipReason.MISSING:
            assert tid in self.deleted, got
        else:
            assert got.reason is SkipReason.STALE or got.reason is SkipReason.NOT_CLAIMABLE, got

    @precondition(lambda self: bool(self.running))
    @rule(data=st.data(), retry=st.booleans())
    def finish(self, data: Any, retry: bool) -> None:
        tid = data.draw(st.sampled_from(sorted(self.running)))
        task = self.running.pop(tid)
        now = self.tick()
        attempt = Attempt(n=task.attempts, started_at=now, duration_ms=1, outcome=Outcome.SUCCESS)
        if retry:
            decision, result = Decision(TaskStatus.RETRYING, now + 15), AttemptResult(Outcome.TRANSIENT)
            self.waiting.add(tid)
        else:
            decision, result = Decision(TaskStatus.COMPLETED), AttemptResult(Outcome.SUCCESS, result=1)
            self.completed[tid] = self.completed.get(tid, 0) + 1
        assert self.store.finish(task, attempt, decision, result, now=now, retention_ms=10**9).recorded

    @invariant()
    def nothing_is_lost(self) -> None:
        queued = set(self.client.lrange(K.queue(Q), 0, -1))  # type: ignore[arg-type]
        for tid in self.waiting:
            token = self.client.hget(K.task(tid), "token")
            live = f"{tid}#{token}" in queued
            held = self.client.zscore(K.held(Q), tid) is not None
            scheduled = self.client.zscore(K.schedule, tid) is not None
            assert live or held or scheduled, f"{tid} waits with no message, not held, not scheduled"
            assert not (held and not self.paused and live), tid
        for tid in self.cancelled | self.deleted:
            assert self.client.zscore(K.held(Q), tid) is None, f"{tid} held after a cancel or delete"

    def drain(self) -> None:
        """Resume, then deliver and finish everything: each task completes once."""
        self.resume()
        for _ in range(20 * (self.n + 1)):
            self.now += 1_000
            self.reconcile()
            while (fetched := self._fetch()) is not None:
                tid, token = fetched
                got = self.store.claim(tid, token, self.now, self.now + 10**9)
                if isinstance(got, Claim):
                    self.waiting.discard(tid)
                    self.running[tid] = got.task
            for tid in sorted(self.running):
                task = self.running.pop(tid)
                att = Attempt(n=task.attempts, started_at=self.now, duration_ms=1, outcome=Outcome.SUCCESS)
                ok = AttemptResult(Outcome.SUCCESS, result=1)
                self.store.finish(
                    task, att, Decision(TaskStatus.COMPLETED), ok, now=self.now, retention_ms=10**9
                )
                self.completed[tid] = self.completed.get(tid, 0) + 1
            if not self.waiting and not self.running:
                break
        assert not self.waiting, f"never ran: {sorted(self.waiting)}"
        assert all(n == 1 for n in self.completed.values()), self.completed
        assert len(self.completed) == self.n - len(self.cancelled) - len(self.deleted)
        assert not set(self.completed) & (self.cancelled | self.deleted)
        assert self.client.exists(K.held(Q)) == 0


def test_pause_resume_never_loses_or_doubles_a_task(redis_client: redis.Redis, redis_url: str) -> None:
    class Run(PauseModel):
        def __init__(self) -> None:
            super().__init__(redis_client, redis_url)

    run_state_machine_as_test(Run, settings=SETTINGS)
