"""Queue pause and resume in Redis (keys `queues:paused`, `held:{queue}`: storage/keys.py).

Every change is one script: lua/queue_pause.lua, lua/queue_resume.lua (a bounded batch of held
tasks per call: `AsyncQueueStore.resume` repeats it until none is left), lua/queue_release.lua
(the reconciler's backstop) and the claim itself (lua/claim.lua holds a paused queue's task).
`QueueStore` is the reconciler's (sync), `AsyncQueueStore` the API's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio as aioredis

from queue_system.domain.queues import QUEUES, QueueState, Resumed
from queue_system.storage import scripts
from queue_system.storage.keys import Keys

# Held tasks one script dispatches again (about 6 Redis calls each: a few ms per batch).
RELEASE_BATCH = 500
# Messages at the head of a queue the stats look at for the oldest waiting task.
HEAD_SCAN = 100


class QueueStore:
    """The reconciler's side: release what resumed queues still hold."""

    def __init__(self, client: redis.Redis, keys: Keys, queues: Sequence[str] = QUEUES) -> None:
        self.keys = keys
        self.queues = list(queues)
        self._release = client.register_script(scripts.QUEUE_RELEASE)

    def release_resumed(self, now: int) -> int:
        """Dispatch held tasks of queues that are no longer paused. -> how many."""
        return int(self._release(keys=[self.keys.prefix], args=[now, RELEASE_BATCH, *self.queues]))


class AsyncQueueStore:
    """The API's side: pause, resume, and each queue's state."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self.keys = keys
        self._pause = client.register_script(scripts.QUEUE_PAUSE)
        self._resume = client.register_script(scripts.QUEUE_RESUME)
        self._stats = client.register_script(scripts.QUEUE_STATS)

    async def pause(self, queue: str, now: int) -> int:
        """-> the queue's paused-at (the first pause's: a repeat keeps it)."""
        reply = await self._pause(keys=[self.keys.prefix], args=[queue, now])
        return int(reply[1])

    async def resume(self, queue: str, now: int) -> Resumed:
        """Resume `queue` and release everything it holds, a batch per script (Redis serves
        others between batches). A pause in between stops the release: the rest stays held."""
        was, released, left = await self._resume(keys=[self.keys.prefix], args=[queue, now, RELEASE_BATCH, 1])
        total = int(released)
        while int(left) > 0:  # each call takes up to a batch off the set: it ends
            paused, released, left = await self._resume(
                keys=[self.keys.prefix], args=[queue, now, RELEASE_BATCH, 0]
            )
            if int(paused):
                break
            total += int(released)
        return Resumed(was_paused=bool(int(was)), released=total)

    async def states(self, queues: Sequence[str], now: int) -> list[QueueState]:
        rows: list[Any] = await self._stats(keys=[self.keys.prefix], args=[now, HEAD_SCAN, *queues])
        return [_state(row) for row in rows]


def _state(row: list[Any]) -> QueueState:
    name, paused_at, queued, held, oldest = (_s(v) for v in row)
    return QueueState(
        name=name,
        paused_at=int(paused_at) if paused_at else None,
        queued=int(queued),
        held=int(held),
        oldest_created_at=int(oldest) if oldest else None,
    )


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
