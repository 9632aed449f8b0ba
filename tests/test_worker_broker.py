"""The finish script acknowledges the attempt's Dramatiq message; the consumer then skips its own ack.

Real Redis, Dramatiq's own fetch and consumer (worker/broker.py), our storage scripts. The first
tests pin the parts of Dramatiq's private `_RedisConsumer` and of its dispatch.lua we rely on.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator
from importlib.resources import files
from typing import Any

import pytest
import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import _RedisConsumer

from queue_system.domain.models import AttemptResult, Outcome, TaskStatus
from queue_system.domain.retry import Decision
from queue_system.storage.keys import Keys
from queue_system.storage.types import Claim, MessageAck
from queue_system.storage.worker_store import RedisTaskStore
from queue_system.worker.broker import FinishAckingBroker, _Consumer
from tests.support.store import create, finish_with

K = Keys()
MSGS = K.queue("default") + ".msgs"


@pytest.fixture
def broker(redis_client: redis.Redis, redis_url: str) -> Iterator[FinishAckingBroker]:
    broker = FinishAckingBroker(url=redis_url, namespace=K.dramatiq_namespace)
    yield broker
    broker.client.close()


@pytest.fixture
def store(redis_client: redis.Redis) -> Iterator[RedisTaskStore]:
    store = RedisTaskStore(redis_client)
    yield store
    store.close()


def _acks(broker: FinishAckingBroker) -> str:
    return broker.ack_in_finish("default", "any", 1).fetched


def _next(consumer: Any) -> MessageProxy:
    for _ in range(50):
        message = next(consumer)
        if message is not None:
            return message  # type: ignore[no-any-return]
    raise AssertionError("no message fetched")


def _complete(store: RedisTaskStore, task_id: str, ack: MessageAck | None) -> tuple[bool, bool]:
    assert isinstance(store.claim(task_id, 1, 1_500, 9_000), Claim)
    decision = Decision(TaskStatus.COMPLETED)
    done = finish_with(store, task_id, 1, decision, AttemptResult(Outcome.SUCCESS), ack=ack)
    return done.recorded, done.acked


def test_the_private_consumer_api_we_rely_on_is_there(broker: FinishAckingBroker) -> None:
    # _Consumer subclasses dramatiq.brokers.redis._RedisConsumer and uses these of its parts.
    params = list(inspect.signature(_RedisConsumer.__init__).parameters)
    assert params == ["self", "broker", "queue_name", "prefetch", "timeout"]
    assert list(inspect.signature(_RedisConsumer.ack).parameters) == ["self", "message"]
    assert list(inspect.signature(_RedisConsumer.nack).parameters) == ["self", "message"]
    assert type(vars(_RedisConsumer)["outstanding_message_count"]) is property
    consumer: Any = broker.consume("default", prefetch=2, timeout=100)
    try:
        assert isinstance(consumer, _Consumer)
        assert consumer.message_cache == [] and consumer.queued_message_ids == set()
        assert consumer.timeout == 100 and consumer.outstanding_message_count == 0
    finally:
        consumer.close()
    assert isinstance(broker.broker_id, str) and broker.namespace == K.dramatiq_namespace


def test_the_dispatch_lua_key_layout_we_mimic() -> None:
    # The finish script does dispatch.lua's `ack` with the keys worker/broker.py names: the
    # consumer's set `{ns}:__acks__.{worker_id}.{queue}`, the hash `{ns}:{queue}.msgs`, and the
    # heartbeat in `{ns}:__heartbeats__`.
    source = (files("dramatiq.brokers") / "redis" / "dispatch.lua").read_text()
    assert 'local acks = namespace .. ":__acks__." .. worker_id' in source
    assert 'local queue_acks = acks .. "." .. queue_name' in source
    assert 'local queue_messages = queue_full_name .. ".msgs"' in source
    assert 'local heartbeats = namespace .. ":__heartbeats__"' in source
    assert 'redis.call("zadd", heartbeats, timestamp, worker_id)' in source
    ack = source[source.index('elseif command == "ack"') : source.index('elseif command == "nack"')]
    assert 'redis.call("srem", queue_acks, message_id) > 0' in ack
    assert 'redis.call("hdel", queue_messages, message_id)' in ack


def test_ack_in_finish_names_the_keys_dramatiq_fetches_into(
    broker: FinishAckingBroker, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "t", type_="webhook")
    assert len(broker.do_fetch("default", 10)) == 1
    ack = broker.ack_in_finish("default", "t", 1)
    assert redis_client.smembers(ack.fetched) == {ack.message_id} == {"t#1"}
    assert redis_client.hexists(ack.messages, ack.message_id)
    assert redis_client.zscore(ack.heartbeats, ack.consumer_id) is not None  # Dramatiq's own heartbeat


def test_finish_acks_the_message_dramatiq_fetched(
    broker: FinishAckingBroker, store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "t")
    assert len(broker.do_fetch("default", 10)) == 1  # Dramatiq's own fetch: the id moves to its ack set
    assert redis_client.smembers(_acks(broker)) == {"t#1"}

    assert _complete(store, "t", broker.ack_in_finish("default", "t", 1)) == (True, True)
    assert redis_client.smembers(_acks(broker)) == set()
    assert redis_client.hlen(MSGS) == 0
    # (Dramatiq's ack also refreshes the broker's heartbeat; ours leaves it to the reconciler's.)


def test_finish_without_a_fetched_message_acks_nothing(
    broker: FinishAckingBroker, store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "t")
    # Not fetched by this broker (e.g. a copy Dramatiq's Retries re-enqueued under another id):
    # the message stays for Dramatiq to ack.
    assert _complete(store, "t", broker.ack_in_finish("default", "t", 1)) == (True, False)
    assert redis_client.hlen(MSGS) == 1


def test_consumer_skips_messages_acked_by_finish_and_acks_the_others(
    broker: FinishAckingBroker, store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "a")
    create(redis_url, "b")
    consumer: Any = broker.consume("default", prefetch=10, timeout=100)
    try:
        first, second = _next(consumer), _next(consumer)
        assert {first.options["redis_message_id"], second.options["redis_message_id"]} == {"a#1", "b#1"}
        assert consumer.outstanding_message_count == 2

        # The attempt owner's side for `a`: finish acked it, so it tells the broker.
        task_a = first.args[0]
        assert _complete(store, task_a, broker.ack_in_finish("default", task_a, 1)) == (True, True)
        broker.skip_ack(broker.ack_in_finish("default", task_a, 1))
        assert broker.acked_elsewhere == {first.options["redis_message_id"]}
        consumer.ack(first)
        assert broker.acked_elsewhere == set()

        # `b` was not acked by a finish: Dramatiq's own ack removes it.
        assert redis_client.sismember(_acks(broker), second.options["redis_message_id"])
        consumer.ack(second)
        assert redis_client.smembers(_acks(broker)) == set()
        assert redis_client.hlen(MSGS) == 0
        assert consumer.outstanding_message_count == 0
    finally:
        consumer.close()


def test_a_handed_off_message_leaves_the_prefetch_but_stays_unacked_until_its_finish(
    broker: FinishAckingBroker, store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "h")
    consumer: Any = broker.consume("default", prefetch=10, timeout=100)
    try:
        message = _next(consumer)
        ack = broker.ack_in_finish("default", "h", 1)
        broker.skip_ack(ack)  # the attempt owner, when the loop took the delivery

        consumer.ack(message)  # the worker thread, as its actor returns

        # Out of the consumer's accounting (room for the next fetch), still unacked in Redis.
        assert consumer.outstanding_message_count == 0 and broker.acked_elsewhere == set()
        assert redis_client.smembers(_acks(broker)) == {"h#1"} and redis_client.hexists(MSGS, "h#1")
        # The delivery's finish acks it.
        assert _complete(store, "h", ack) == (True, True)
        assert redis_client.smembers(_acks(broker)) == set() and redis_client.hlen(MSGS) == 0
    finally:
        consumer.close()


def test_a_full_consumer_refills_as_soon_as_an_ack_makes_room(
    broker: FinishAckingBroker, redis_url: str
) -> None:
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
    broker: FinishAckingBroker, redis_url: str
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
