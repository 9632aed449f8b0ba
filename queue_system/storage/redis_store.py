"""Task storage on Redis: `TaskStore` (sync, the worker's threads) and `AsyncTaskStore` (the API).

Each method is one round trip: a Lua script or a pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis

from queue_system.domain.models import MAX_HISTORY, Attempt, Task, TaskStatus
from queue_system.storage import scripts
from queue_system.storage.codec import attempt_to_json, flat_pairs, task_from_hash
from queue_system.storage.keys import RUN_ACTOR, Keys

# Rows a listing may examine while filtering before it returns a partial page with a cursor.
MAX_SCAN = 5_000


@dataclass(frozen=True, slots=True)
class NewTask:
    id: str
    type: str
    queue: str
    payload_json: str
    fingerprint: str
    now: int
    due: int | None = None  # epoch ms; set for a scheduled task
    extra: dict[str, str] = field(default_factory=dict)  # retry, timeout_ms, ...


@dataclass(frozen=True, slots=True)
class Page:
    tasks: list[Task]
    next_cursor: tuple[int, str] | None


@dataclass(frozen=True, slots=True)
class Claim:
    task: Task | None
    reason: str  # "ok" | "missing" | "stale" | "skip:<status>"


def _pairs_to_dict(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


class TaskStore:
    """Sync storage for the worker (thread-safe: redis-py pools connections)."""

    def __init__(self, client: redis.Redis, keys: Keys | None = None, actor: str = RUN_ACTOR) -> None:
        self.client = client
        self.keys = keys or Keys()
        self.actor = actor
        self._claim = client.register_script(scripts.CLAIM)
        self._finish = client.register_script(scripts.FINISH)
        self._promote = client.register_script(scripts.PROMOTE)
        self._reclaim = client.register_script(scripts.RECLAIM)
        self._renew = client.register_script(scripts.RENEW)
        self._sweep = client.register_script(scripts.SWEEP)

    def _k(self) -> list[str]:
        return [self.keys.prefix]

    def claim(self, task_id: str, token: int, now: int, lease_until: int) -> Claim:
        out = self._claim(keys=self._k(), args=[task_id, token, now, lease_until])
        if out[0] != "ok":
            return Claim(None, out[0] if len(out) == 1 else f"{out[0]}:{out[1]}")
        return Claim(task_from_hash(_pairs_to_dict(out[1:])), "ok")

    def finish(
        self,
        task_id: str,
        token: int,
        *,
        now: int,
        status: TaskStatus,
        next_at: int | None,
        retention_ms: int,
        attempt: Attempt,
        fields: dict[str, str],
    ) -> bool:
        args: list[Any] = [task_id, token, now, status.value, next_at or "", retention_ms]
        args += [attempt_to_json(attempt), MAX_HISTORY, *flat_pairs(fields)]
        return bool(self._finish(keys=self._k(), args=args))

    def promote_due(self, now: int, limit: int = 500) -> int:
        return int(self._promote(keys=self._k(), args=[now, limit, self.actor]))

    def reclaim_expired(self, now: int, limit: int = 500) -> int:
        return int(self._reclaim(keys=self._k(), args=[now, limit, self.actor, MAX_HISTORY]))

    def renew_leases(self, lease_until: int, owned: list[tuple[str, int]]) -> int:
        if not owned:
            return 0
        args: list[Any] = [lease_until]
        for task_id, token in owned:
            args += [task_id, token]
        return int(self._renew(keys=self._k(), args=args))

    def sweep(self, now: int, limit: int = 500) -> int:
        return int(self._sweep(keys=self._k(), args=[now, limit]))

    def get(self, task_id: str) -> Task | None:
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.task(task_id))
            pipe.lrange(self.keys.history(task_id), 0, -1)
            fields, history = pipe.execute()
        return task_from_hash(fields, history) if fields else None


class AsyncTaskStore:
    """Async storage for the API."""

    def __init__(self, client: aioredis.Redis, keys: Keys | None = None, actor: str = RUN_ACTOR) -> None:
        self.client = client
        self.keys = keys or Keys()
        self.actor = actor
        self._create = client.register_script(scripts.CREATE)
        self._cancel = client.register_script(scripts.CANCEL)
        self._delete = client.register_script(scripts.DELETE)
        self._page = client.register_script(scripts.PAGE)

    def _k(self) -> list[str]:
        return [self.keys.prefix]

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def create(self, new: NewTask) -> tuple[bool, str]:
        """-> (True, "") created and enqueued | (False, fingerprint of the task holding that id)."""
        status = TaskStatus.SCHEDULED if new.due is not None else TaskStatus.PENDING
        args: list[Any] = [new.id, new.type, new.queue, new.now, status.value, new.due or ""]
        args += [self.actor, new.fingerprint, "payload", new.payload_json, *flat_pairs(new.extra)]
        out = await self._create(keys=self._k(), args=args)
        return (True, "") if out[0] == 1 else (False, out[1])

    async def get(self, task_id: str) -> Task | None:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.task(task_id))
            pipe.lrange(self.keys.history(task_id), 0, -1)
            fields, history = await pipe.execute()
        return task_from_hash(fields, history) if fields else None

    async def cancel(self, task_id: str, now: int, retention_ms: int) -> str:
        """-> "ok" | "missing" | the status that cannot be cancelled."""
        out = await self._cancel(keys=self._k(), args=[task_id, now, retention_ms])
        return str(out[0]) if out[0] != "bad" else str(out[1])

    async def delete(self, task_id: str) -> bool:
        return bool(await self._delete(keys=self._k(), args=[task_id]))

    async def page(
        self,
        *,
        status: str | None,
        type_: str | None,
        cursor: tuple[int, str] | None,
        limit: int,
    ) -> Page:
        index = self.keys.index(status=status, type_=type_)
        filter_field, filter_value = ("type", type_) if status and type_ else ("", "")
        score, last = cursor if cursor else ("", "")
        rows, more, scanned_id, scanned_score = await self._page(
            keys=self._k(), args=[index, filter_field, filter_value or "", score, last, limit, MAX_SCAN]
        )
        ids = rows[::2]
        async with self.client.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hgetall(self.keys.task(task_id))
            found = await pipe.execute()
        tasks = [task_from_hash(fields) for fields in found if fields]
        next_cursor: tuple[int, str] | None = None
        if more and len(ids) == limit:
            next_cursor = (int(float(rows[-1])), ids[-1])
        elif more:
            next_cursor = (int(float(scanned_score)), scanned_id)
        return Page(tasks, next_cursor)
