"""Queue pause and resume: the API's use cases and the reconciler's backstop.

A paused queue keeps accepting tasks (a submit answers 201 as ever); its workers' claims hold its
tasks instead of starting them (storage/lua/queues.lua), so nothing is claimed while it is paused,
whichever worker fetched the message and whenever (an attempt already under way finishes). The
pause lives in Redis, so it survives restarts of workers, the API and (persisted) Redis alike.
Resume dispatches the held tasks again, oldest first, each with a new token: none lost, none twice.
"""

from __future__ import annotations

from loguru import logger

from queue_system.domain.queues import QUEUES, QueueState, Resumed
from queue_system.errors import QueueNotFound
from queue_system.service.clock import Clock, now_ms
from queue_system.storage.queues import AsyncQueueStore, QueueStore


class QueueService:
    def __init__(self, store: AsyncQueueStore, *, clock: Clock = now_ms) -> None:
        self.store = store
        self.clock = clock

    @staticmethod
    def check(name: str) -> str:
        """A queue name from outside -> the name, or QueueNotFound (404): only QUEUES are keys."""
        if name not in QUEUES:
            raise QueueNotFound(name, QUEUES)
        return name

    async def list(self) -> list[QueueState]:
        return await self.store.states(QUEUES, self.clock())

    async def get(self, name: str) -> QueueState:
        return (await self.store.states([self.check(name)], self.clock()))[0]

    async def pause(self, name: str) -> QueueState:
        await self.store.pause(self.check(name), self.clock())
        logger.info("queue {} paused", name)
        return await self.get(name)

    async def resume(self, name: str) -> tuple[QueueState, Resumed]:
        done = await self.store.resume(self.check(name), self.clock())
        if done.was_paused or done.released:
            logger.info("queue {} resumed: {} held task(s) dispatched again", name, done.released)
        return await self.get(name), done


def release_resumed(store: QueueStore, now: int) -> int:
    """The reconciler's step: held tasks of queues resumed by a process that died mid-release."""
    n = store.release_resumed(now)
    if n:
        logger.info("dispatched {} held task(s) of resumed queue(s) again", n)
    return n
