"""The finish script acknowledges the attempt's Dramatiq message; the consumer then skips its own ack.

Real Redis, Dramatiq's own fetch and consumer (worker/broker.py), our storage scripts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from dramatiq.broker import MessageProxy

from queue_system.domain.models import Attempt, Outcome, TaskStatus
from queue_system.storage.keys import Keys
from queue_system.storage.redis_store import MessageAck, TaskStore
from queue_system.worker.broker import QueueBroker
from tests.test_store import create

K = Keys()
MSGS = K.queue("default") + ".msgs"


@pytest.fixture
def broker(redis_client: redis.Redis, redis_url: str) -> Iterator[QueueBroker]:
    broker = QueueBroker(url=redis_url, namespace=K.dramatiq_namespace)
    yield broker
    broker.client.close()


@pytest.fixture
def store(redis_client: redis.Redis) -> Iterator[TaskStore]:
    store = TaskStore(redis_client)
    yield store
    store.close()


def _acks(broker: QueueBroker) -> str:
    return f"{K.dramatiq_namespace}:__acks__.{broker.broker_id}.default"


def _next(consumer: Any) -> MessageProxy:
    for _ in range(50):
        message = next(consumer)
        if message is not None:
            return message  # type: ignore[no-any-return]
    raise AssertionError("no message fetched")


def _complete(store: TaskStore, task_id: str, ack: MessageAck | None) -> tuple[bool, bool]:
    assert store.claim(task_id, 1, 1_500, 9_000).reason == "ok"
    done = store.finish(
        task_id,
        1,
        now=2_000,
        status=TaskStatus.COMPLETED,
        next_at=None,
        retention_ms=60_000,
        attempt=Attempt(n=1, started_at=1_500, duration_ms=1, outcome=Outcome.SUCCESS),
        fields={"result": "null"},
        ack=ack,
    )
    return done.recorded, done.acked


def test_finish_acks_the_message_dramatiq_fetched(
    broker: QueueBroker, store: TaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "t")
    assert len(broker.do_fetch("default", 10)) == 1  # Dramatiq's own fetch: the id moves to its ack set
    assert redis_client.smembers(_acks(broker)) == {"t#1"}

    assert _complete(store, "t", MessageAck(broker.broker_id, "default")) == (True, True)
    assert redis_client.smembers(_acks(broker)) == set()
    assert redis_client.hlen(MSGS) == 0
    assert redis_client.zscore(K.dramatiq_namespace + ":__heartbeats__", broker.broker_id) == 2_000


def test_finish_without_a_fetched_message_acks_nothing(
    broker: QueueBroker, store: TaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "t")
    # Not fetched by this broker (e.g. a copy Dramatiq's Retries re-enqueued under another id):
    # the message stays for Dramatiq to ack.
    assert _complete(store, "t", MessageAck(broker.broker_id, "default")) == (True, False)
    assert redis_client.hlen(MSGS) == 1


def test_consumer_skips_messages_acked_by_finish_and_acks_the_others(
    broker: QueueBroker, store: TaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "a")
    create(redis_url, "b")
    consumer: Any = broker.consume("default", prefetch=10, timeout=100)
    try:
        first, second = _next(consumer), _next(consumer)
        assert {first.options["redis_message_id"], second.options["redis_message_id"]} == {"a#1", "b#1"}
        assert consumer.outstanding_message_count == 2

        # The runner's side for `a`: finish acked it, so it tells the broker.
        task_a = first.args[0]
        assert _complete(store, task_a, MessageAck(broker.broker_id, "default")) == (True, True)
        broker.acked_by_finish.add(first.options["redis_message_id"])
        consumer.ack(first)
        assert broker.acked_by_finish == set()

        # `b` was not acked by a finish: Dramatiq's own ack removes it.
        assert redis_client.sismember(_acks(broker), second.options["redis_message_id"])
        consumer.ack(second)
        assert redis_client.smembers(_acks(broker)) == set()
        assert redis_client.hlen(MSGS) == 0
        assert consumer.outstanding_message_count == 0
    finally:
        consumer.close()


def test_a_full_consumer_refills_as_soon_as_an_ack_makes_room(broker: QueueBroker, redis_url: str) -> None:
    for i in range(6):
        create(redis_url, f"m{i}")
    consumer: Any = broker.consume("default", prefetch=4, timeout=5_000)
    try:
        held = [_next(consumer) for _ in range(4)]  # the prefetch is full: 4 outstanding
        assert consumer.outstanding_message_count == 4

        got: list[MessageProxy | None] = []
        waiting = threading.Thread(target=lambda: got.append(next(consumer)))
        waiting.start()
        waiting.join(0.2)
        assert waiting.is_alive()  # it waits for room rather than fetching past the prefetch
        consumer.ack(held[0])  # a worker thread finishes one: room for a refill
        waiting.join(4)
        assert not waiting.is_alive()
        assert got and got[0] is not None and got[0].options["redis_message_id"] == "m4#1"
    finally:
        consumer.close()


def test_a_full_consumer_with_no_room_returns_none_after_the_idle_timeout(
    broker: QueueBroker, redis_url: str
) -> None:
    for i in range(3):
        create(redis_url, f"m{i}")
    consumer: Any = broker.consume("default", prefetch=2, timeout=100)
    try:
        _next(consumer), _next(consumer)
        assert next(consumer) is None  # so the consumer loop can check for shutdown
        assert consumer.outstanding_message_count == 2
    finally:
        consumer.close()
