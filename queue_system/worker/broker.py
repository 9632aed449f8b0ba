"""`FinishAckingBroker`: Dramatiq's RedisBroker, with two changes to its consumer: the ack of a
finished task's message is done by our finish script, and a full prefetch buffer is refilled as
soon as there is room.

Recording an attempt's outcome and acknowledging its message are one atomic step: the broker hands
the attempt owner (worker/attempts.py) a `MessageAck` (`ack_in_finish`: the consumer's set of
fetched messages, the message hash, the message id and the heartbeat, named exactly as Dramatiq's
dispatch.lua names them), the finish script does Dramatiq's SREM + HDEL with it, and when it did
(or will: below), `skip_ack` tells the consumer to skip its own ack round trip. Every other
message (skipped as stale, a Dramatiq retry of an infrastructure error, the delay queues) is
acknowledged by Dramatiq as usual.

A message whose delivery was handed to the process's delivery loop (`skip_ack` too) is not acked
when its actor returns: it stays in Redis, in this consumer's set of fetched messages, until the
loop's completion records the outcome with the finish script, which acks it. The consumer releases
it from its own accounting at once, though: the prefetch counts the messages waiting for a worker
thread, and the messages in flight are bounded by the loop (WORKER_MAX_INFLIGHT; a thread blocks
in its hand-off while the loop is full, so the consumer stops fetching). Counting them against the
prefetch instead would need a prefetch >= WORKER_MAX_INFLIGHT, and every process would then fetch
hundreds of messages at a time ahead of the others. If the process dies, the reconciler of another
one puts the fetched set back on the queue (service/reconciler.py).

A failover (docs/operations/high-availability.md) reaches the consumer as one of three errors: a
`ConnectionError` (the primary died; or, through Sentinel, `"The previous master is now a slave"`),
a `TimeoutError` (a primary that stopped answering) or a `ReadOnlyError` (a demoted primary behind
a failover endpoint). Dramatiq turns only the first into `ConnectionClosed` (dramatiq#894/#895:
the others went down its "unexpected error" path); here all three are, so the worker's consumer
thread logs one line and starts a fresh consumer (after `dramatiq_restart_delay`), whose next
connection finds the new primary.

This is the only module that knows Dramatiq's consumer-side keys and reaches into
`dramatiq.brokers.redis._RedisConsumer` (pinned in constraints.txt). tests/test_worker_broker.py
pins what we rely on: the consumer's attributes and ack/nack signatures, and the key layout of
dispatch.lua; an upgrade that changes them fails there, not in production (unacknowledged messages
would be redelivered).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.errors import ConnectionClosed

from queue_system.domain.queues import QUEUES
from queue_system.storage import dramatiq_wire
from queue_system.storage.evalsha import demoted
from queue_system.storage.types import MessageAck

# What a failover looks like to a consumer (module docstring); ConnectionError is Dramatiq's own case.
_FAILOVER_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError)


class _Consumer(_RedisConsumer):
    broker: FinishAckingBroker

    def __init__(self, broker: FinishAckingBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)  # type: ignore[no-untyped-call]
        # Refill once a quarter of the prefetch has been worked off: fetches stay batched and
        # the worker threads never run dry.
        self._low_water = prefetch - max(1, prefetch // 4)
        self._room = threading.Event()
        self.polled_at = time.monotonic()  # ops: worker health judges a consumer by it

    def __next__(self) -> MessageProxy | None:
        try:
            return self._next()
        except _FAILOVER_ERRORS as exc:
            raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]
        except redis.ResponseError as exc:
            if not demoted(exc):
                raise
            # Dramatiq's fetch script on a demoted primary (behind a failover endpoint): drop the
            # pool's idle connections (this one among them), so the restarted consumer connects to
            # the new primary. Not those in use: closing a socket another thread reads is unsafe.
            self.broker.client.connection_pool.disconnect(inuse_connections=False)
            raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]

    def _next(self) -> MessageProxy | None:
        self.polled_at = time.monotonic()
        # With every prefetched message still in the threads, Dramatiq's consumer sleeps a
        # backoff (5-10 ms, doubling up to the idle timeout) before looking again: at 2 x 8
        # threads that capped a no-op drain near 4,300 tasks/s whatever the CPU. Here it waits
        # until a worker thread's ack makes room, up to the idle timeout (the loop then checks
        # for shutdown).
        if not self.message_cache and self.outstanding_message_count > self._low_water:
            deadline = time.monotonic() + self.timeout / 1000
            while self.outstanding_message_count > self._low_water:
                self._room.clear()
                if self.outstanding_message_count <= self._low_water:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._room.wait(remaining):
                    return None
        return super().__next__()  # type: ignore[no-untyped-call,no-any-return]

    def ack(self, message: MessageProxy) -> None:
        mid: str = message.options.get("redis_message_id", "")
        try:
            if _take(self.broker.acked_elsewhere, mid):
                self.queued_message_ids.discard(message.message_id)  # acked (or to be) by our scripts
            else:
                super().ack(message)  # type: ignore[no-untyped-call]
        except _FAILOVER_ERRORS as exc:
            raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]
        finally:
            self._made_room()

    def nack(self, message: MessageProxy) -> None:
        self.broker.acked_elsewhere.discard(message.options.get("redis_message_id"))
        try:
            super().nack(message)  # type: ignore[no-untyped-call]
        except _FAILOVER_ERRORS as exc:
            raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]
        finally:
            self._made_room()

    def _made_room(self) -> None:
        if self.outstanding_message_count <= self._low_water:
            self._room.set()


def _take(ids: set[str], mid: str) -> bool:
    try:
        ids.remove(mid)  # atomic under the GIL, unlike a test then a discard
    except KeyError:
        return False
    return True


class FinishAckingBroker(RedisBroker):
    """Dramatiq's RedisBroker whose consumers leave the ack of a finished task to our finish script."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        # Message ids (`id#token`) our scripts acknowledged, or will (the delivery loop owns them),
        # that the consumer has yet to see. set.add/remove are atomic under the GIL: worker threads
        # add, the consumer thread removes.
        self.acked_elsewhere: set[str] = set()
        # Dramatiq's dispatch.lua names: `{ns}:__acks__.{broker_id}.{queue}` holds what this
        # broker's consumer of `queue` fetched and has not acknowledged yet.
        self._fetched = {q: dramatiq_wire.acks(self.namespace, self.broker_id, q) for q in QUEUES}
        self._heartbeats = dramatiq_wire.heartbeats(self.namespace)
        self._messages = {q: dramatiq_wire.messages(self.namespace, q) for q in QUEUES}

    @property
    def consumer_class(self) -> type[_RedisConsumer]:
        return _Consumer

    def ack_in_finish(self, queue: str, task_id: str, token: int) -> MessageAck:
        """The ack of message (task_id, token), fetched by this broker's consumer of `queue`."""
        return MessageAck(
            fetched=self._fetched[queue],
            messages=self._messages[queue],
            message_id=dramatiq_wire.message_id(task_id, token),
            heartbeats=self._heartbeats,
            consumer_id=self.broker_id,
            queue=queue,
        )

    def skip_ack(self, ack: MessageAck) -> None:
        """Our script acknowledged the message of `ack` (FINISH, UNCLAIM), or the delivery loop owns
        it and its FINISH will: the consumer must not ack it, only release it from its count."""
        self.acked_elsewhere.add(ack.message_id)
