"""The worker's storage steps around the delivery loop, on a real Redis: UNCLAIM (a claimed task
whose attempt never started goes back), FINISH in a pipeline, and the reconciler's heartbeat
with the dead-broker requeue (what a killed process had fetched goes back to its queue; a live
broker's messages are never touched)."""

from __future__ import annotations

import time

import pytest
import redis

from queue_system.domain.models import AttemptResult, Outcome, TaskStatus
from queue_system.domain.retry import Decision
from queue_system.service.reconciler import JUDGE_AFTER_MS, Reconciler
from queue_system.service.runner import InFlight
from queue_system.storage import dramatiq_wire
from queue_system.storage.keys import Keys
from queue_system.storage.types import FinishCall, MessageAck
from queue_system.storage.worker_store import RedisTaskStore
from queue_system.testing import poll
from queue_system.worker.broker import FinishAckingBroker
from tests.support.store import attempt, create, get, ok, queued_messages

K = Keys()
DEAD_AFTER = 3_000


def _fetch(broker: FinishAckingBroker, n: int = 10) -> list[str]:
    """Dramatiq's own fetch: the message ids move into the broker's ack set."""
    return [str(m) for m in broker.do_fetch("default", n)]


def _broker(redis_url: str) -> FinishAckingBroker:
    return FinishAckingBroker(url=redis_url, namespace=K.dramatiq_namespace)


def test_unclaim_restores_a_pending_task_and_dispatches_a_new_message(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "u")
    broker = _broker(redis_url)
    try:
        assert len(_fetch(broker)) == 1
        task = ok(store.claim("u", 1, 1_500, 9_000))
        ack = broker.ack_in_finish("default", "u", 1)

        undone = store.unclaim(task, 2_000, ack)

        assert undone.undone and undone.acked
        assert redis_client.scard(ack.fetched) == 0 and not redis_client.hexists(ack.messages, "u#1")
        back = get(redis_url, "u")
        assert back is not None
        assert (back.status, back.attempts, back.token) == (TaskStatus.PENDING, 0, 2)
        assert redis_client.zscore(K.leases, "u") is None
        assert redis_client.zscore(K.index(status="pending"), "u") is not None
        assert redis_client.zscore(K.index(status="processing"), "u") is None
        assert [m["message_id"] for m in queued_messages(redis_client)] == ["u#2"]
        # The new message claims as the first attempt again.
        assert ok(store.claim("u", 2, 2_500, 9_000)).attempts == 1
    finally:
        broker.client.close()


def test_unclaim_of_a_retry_goes_back_to_retrying_with_its_trigger(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "r")
    first = ok(store.claim("r", 1, 1_500, 9_000))
    failed = store.finish(
        first,
        attempt(1),
        Decision(TaskStatus.RETRYING, 3_000),
        AttemptResult(Outcome.TRANSIENT, error="HTTP 503"),
        now=2_000,
        retention_ms=60_000,
    )
    assert failed.recorded
    assert store.promote_due(3_000) == 1  # token 2
    task = ok(store.claim("r", 2, 3_500, 9_000))
    assert task.attempts == 2

    assert store.unclaim(task, 4_000).undone

    back = get(redis_url, "r")
    assert back is not None and (back.status, back.attempts, back.token) == (TaskStatus.RETRYING, 1, 3)


def test_unclaim_of_a_task_no_longer_held_changes_nothing_but_acks(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "s")
    task = ok(store.claim("s", 1, 1_500, 9_000))
    assert store.reclaim_expired(10_000, 60_000) == 1  # the lease was taken over: token 2

    assert not store.unclaim(task, 10_500).undone

    back = get(redis_url, "s")
    assert back is not None and (back.status, back.token) == (TaskStatus.RETRYING, 2)


def test_finish_many_records_each_attempt_in_one_pipeline(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    ids = [f"f{i}" for i in range(5)]
    for task_id in ids:
        create(redis_url, task_id)
    broker = _broker(redis_url)
    try:
        assert len(_fetch(broker)) == 5
        calls = []
        for task_id in ids:
            task = ok(store.claim(task_id, 1, 1_500, 9_000))
            ack: MessageAck = broker.ack_in_finish("default", task_id, 1)
            result = AttemptResult(Outcome.SUCCESS, result={"status_code": 200})
            calls.append(FinishCall(task, attempt(1), Decision(TaskStatus.COMPLETED), result, 2_000, ack))
        redis_client.script_flush()  # the pipeline loads a script Redis forgot

        done = store.finish_many(calls, retention_ms=60_000)

        assert [(d.recorded, d.acked) for d in done] == [(True, True)] * 5
        assert redis_client.scard(calls[0].ack.fetched) == 0  # type: ignore[union-attr]
        for task_id in ids:
            finished = get(redis_url, task_id)
            assert finished is not None and finished.status is TaskStatus.COMPLETED
        assert store.finish_many(calls, retention_ms=60_000)[0].recorded  # a repeat is harmless
    finally:
        broker.client.close()


def test_a_dead_brokers_fetched_messages_go_back_to_the_front_of_their_queue(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    for task_id in ("a", "b", "c", "d"):
        create(redis_url, task_id)
    dead, live = _broker(redis_url), _broker(redis_url)
    try:
        assert len(_fetch(dead, 2)) == 2  # a#1, b#1 (Dramatiq heartbeats `dead` now)
        assert len(_fetch(live, 1)) == 1  # c#1
        redis_client.hdel(K.messages("default"), "b#1")  # acked elsewhere meanwhile: not put back
        now = int(time.time() * 1000) + DEAD_AFTER + 1  # Dramatiq's fetch beat at about time.time()
        redis_client.zadd(K.heartbeats, {live.broker_id: now - 10})  # live beat recently

        assert store.heartbeat("me", now, DEAD_AFTER, judge=False) == 0  # not judging yet
        assert redis_client.zscore(K.heartbeats, "me") == now

        assert store.heartbeat("me", now, DEAD_AFTER, judge=True) == 1

        assert redis_client.lrange(K.queue("default"), 0, -1) == ["a#1", "d#1"]  # front, then the rest
        assert not redis_client.exists(K.acks(dead.broker_id, "default"))
        assert redis_client.zscore(K.heartbeats, dead.broker_id) is None
        # The live broker keeps what it fetched, and its heartbeat.
        assert redis_client.smembers(K.acks(live.broker_id, "default")) == {"c#1"}
        assert redis_client.zscore(K.heartbeats, live.broker_id) is not None
    finally:
        dead.client.close()
        live.client.close()


def test_the_delay_queues_of_a_dead_broker_are_requeued_too(
    store: RedisTaskStore, redis_client: redis.Redis
) -> None:
    delay_queue = f"default{dramatiq_wire.DELAY_SUFFIX}"
    assert delay_queue in dramatiq_wire.CONSUMED
    redis_client.hset(K.messages(delay_queue), "x#1", "{}")
    redis_client.sadd(K.acks("gone", delay_queue), "x#1")
    redis_client.zadd(K.heartbeats, {"gone": 1_000})

    assert store.heartbeat("me", 1_000 + DEAD_AFTER + 1, DEAD_AFTER, judge=True) == 1

    assert redis_client.lrange(K.queue(delay_queue), 0, -1) == ["x#1"]


def test_the_reconciler_judges_only_after_beating_for_a_while(
    store: RedisTaskStore, redis_client: redis.Redis
) -> None:
    redis_client.sadd(K.acks("gone", "default"), "y#1")
    redis_client.hset(K.messages("default"), "y#1", "{}")
    redis_client.zadd(K.heartbeats, {"gone": 0})
    reconciler = Reconciler(
        store, InFlight(), lease_ms=DEAD_AFTER, poll_interval_ms=100, retention_ms=60_000, broker_id="me"
    )
    start = 10_000_000
    for t in range(start, start + JUDGE_AFTER_MS, 1_000):  # beats, without judging
        assert reconciler.heartbeat(t) == 0
    assert redis_client.llen(K.queue("default")) == 0

    assert reconciler.heartbeat(start + JUDGE_AFTER_MS) == 1
    assert redis_client.lrange(K.queue("default"), 0, -1) == ["y#1"]


def test_the_reconciler_loop_survives_a_bug_in_a_tick(
    store: RedisTaskStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def promote_due(now: int, limit: int = 500) -> int:
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return 0

    monkeypatch.setattr(store, "promote_due", promote_due)
    reconciler = Reconciler(store, InFlight(), lease_ms=DEAD_AFTER, poll_interval_ms=10, retention_ms=60_000)
    reconciler.start()
    try:
        assert poll(lambda: len(calls) >= 3, timeout=10)  # ticks go on after the failed one
    finally:
        reconciler.stop()
