"""Dramatiq's RedisBroker, with the ack of a finished task's message done by our finish script.

Recording an attempt's outcome and acknowledging its message are one atomic step (the FINISH
script in storage/scripts.py does Dramatiq's SREM + HDEL for the message `id#token`). The runner
adds the ids of the messages acknowledged that way to `acked_by_finish`, and the consumer skips its
own ack round trip for those. Every other message (skipped as stale, a Dramatiq retry of an
infrastructure error, the delay queues) is acknowledged by Dramatiq as usual.

This reaches into `dramatiq.brokers.redis._RedisConsumer` (pinned in constraints.txt); the end to
end tests fail loudly if an upgrade changes it, since unacknowledged messages would be redelivered.
"""

from __future__ import annotations

from typing import Any

from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer


class _Consumer(_RedisConsumer):
    broker: QueueBroker

    def ack(self, message: MessageProxy) -> None:
        mid: str = message.options.get("redis_message_id", "")
        try:
            self.broker.acked_by_finish.remove(mid)
        except KeyError:
            super().ack(message)  # type: ignore[no-untyped-call]
        else:
            self.queued_message_ids.discard(message.message_id)

    def nack(self, message: MessageProxy) -> None:
        self.broker.acked_by_finish.discard(message.options.get("redis_message_id"))
        super().nack(message)  # type: ignore[no-untyped-call]


class QueueBroker(RedisBroker):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        # Message ids (`id#token`) the finish script acknowledged and the consumer has yet to see.
        # set.add/remove are atomic under the GIL: worker threads add, the consumer thread removes.
        self.acked_by_finish: set[str] = set()

    @property
    def consumer_class(self) -> type[_RedisConsumer]:
        return _Consumer
