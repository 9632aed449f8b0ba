"""Task storage on Redis: `TaskStore` (sync, the worker's threads) and `AsyncTaskStore` (the API).

Each method is one round trip: a Lua script or a pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis

from queue_system.domain.models import (
    MAX_HISTORY,
    MAX_LOST_IN_A_ROW,
    Attempt,
    Page,
    Task,
    TaskQuery,
    TaskStatus,
)
from queue_system.domain.policy import decode_policy
from queue_system.storage import scripts
from queue_system.storage.calls import Batcher, Script, ScriptCaller
from queue_system.storage.codec import attempt_to_json, dumps, flat_pairs, loads, task_from_hash
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
class Claim:
    task: Task | None
    reason: str  # "ok" | "missing" | "stale" | "skip:<status>"


@dataclass(frozen=True, slots=True)
class Finished:
    recorded: bool  # False: the lease had been taken over; the attempt went to the history only
    acked: bool  # the attempt's Dramatiq message was acknowledged by the same script


@dataclass(frozen=True, slots=True)
class MessageAck:
    """Where the message being finished was fetched: Dramatiq's broker id and the queue."""

    broker_id: str
    queue: str


def _opt_int(value: str) -> int | None:
    return int(value) if value else None


class TaskStore:
    """Sync storage for the worker (thread-safe: each thread uses a connection of its own)."""

    def __init__(self, client: redis.Redis, keys: Keys | None = None, actor: str = RUN_ACTOR) -> None:
        self.client = client
        self.keys = keys or Keys()
        self.actor = actor
        self._caller = ScriptCaller(client)
        prefix = self.keys.prefix
        self._claim = Script(self._caller, scripts.CLAIM, prefix)
        self._finish = Script(self._caller, scripts.FINISH, prefix)
        self._promote = Script(self._caller, scripts.PROMOTE, prefix)
        self._reclaim = Script(self._caller, scripts.RECLAIM, prefix)
        self._renew = Script(self._caller, scripts.RENEW, prefix)
        self._sweep = Script(self._caller, scripts.SWEEP, prefix)
        self._redispatch = Script(self._caller, scripts.REDISPATCH, prefix)

    def close(self) -> None:
        self._caller.close()

    def claim(self, task_id: str, token: int, now: int, lease_until: int) -> Claim:
        out = self._claim(task_id, token, now, lease_until)
        if out[0] != "ok":
            return Claim(None, out[0] if len(out) == 1 else f"{out[0]}:{out[1]}")
        _, created, type_, queue, attempts, retry, timeout, retried, base, trigger, payload = out
        task = Task(
            id=task_id,
            type=type_,
            payload=loads(payload),
            status=TaskStatus.PROCESSING,
            queue=queue,
            attempts=attempts,
            created_at=int(created),
            updated_at=now,
            retry=decode_policy(retry) if retry else None,
            timeout_ms=_opt_int(timeout),
            token=token,
            retried_at=_opt_int(retried),
            attempt_base=int(base or 0),
            trigger=trigger or "auto",
        )
        return Claim(task, "ok")

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
        ack: MessageAck | None = None,
    ) -> Finished:
        args: list[Any] = [task_id, token, now, status.value, next_at or "", retention_ms]
        args += [attempt_to_json(attempt), MAX_HISTORY]
        args += [ack.broker_id, ack.queue] if ack else ["", ""]
        recorded, acked = self._finish(*args, *flat_pairs(fields))
        return Finished(bool(recorded), bool(acked))

    def promote_due(self, now: int, limit: int = 500) -> int:
        return int(self._promote(now, limit, self.actor))

    def reclaim_expired(self, now: int, retention_ms: int, limit: int = 500) -> int:
        return int(self._reclaim(now, limit, self.actor, MAX_HISTORY, MAX_LOST_IN_A_ROW, retention_ms))

    def renew_leases(self, lease_until: int, owned: list[tuple[str, int]]) -> int:
        if not owned:
            return 0
        args: list[Any] = [lease_until]
        for task_id, token in owned:
            args += [task_id, token]
        return int(self._renew(*args))

    def sweep(self, now: int, limit: int = 500) -> int:
        return int(self._sweep(now, limit))

    def redispatch_stranded(
        self, status: TaskStatus, offset: int, now: int, min_age_ms: int, limit: int = 500
    ) -> tuple[int, int]:
        """-> (tasks checked, tasks dispatched again) of `status`, from rank `offset`, oldest first."""
        checked, redispatched = self._redispatch(status.value, offset, limit, now, min_age_ms, self.actor)
        return int(checked), int(redispatched)

    def get(self, task_id: str) -> Task | None:
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.task(task_id))
            pipe.get(self.keys.payload(task_id))
            pipe.lrange(self.keys.history(task_id), 0, -1)
            fields, payload, history = pipe.execute()
        return task_from_hash(fields, history, payload) if fields else None


class AsyncTaskStore:
    """Async storage for the API."""

    def __init__(self, client: aioredis.Redis, keys: Keys | None = None, actor: str = RUN_ACTOR) -> None:
        self.client = client
        self.keys = keys or Keys()
        self.actor = actor
        self._create = Batcher(client, scripts.CREATE, self.keys.prefix)
        self._cancel = client.register_script(scripts.CANCEL)
        self._delete = client.register_script(scripts.DELETE)
        self._page = client.register_script(scripts.PAGE)
        self._retry = client.register_script(scripts.RETRY)

    def _k(self) -> list[str]:
        return [self.keys.prefix]

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def create(self, new: NewTask) -> tuple[bool, str]:
        """-> (True, "") created and enqueued | (False, fingerprint of the task holding that id)."""
        status = TaskStatus.SCHEDULED if new.due is not None else TaskStatus.PENDING
        args: list[Any] = [new.id, new.type, new.queue, new.now, status.value, new.due or ""]
        args += [self.actor, new.fingerprint, new.payload_json, *flat_pairs(new.extra)]
        out = await self._create(*args)
        return (True, "") if out[0] == 1 else (False, out[1])

    async def get(self, task_id: str) -> Task | None:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.task(task_id))
            pipe.get(self.keys.payload(task_id))
            pipe.lrange(self.keys.history(task_id), 0, -1)
            fields, payload, history = await pipe.execute()
        return task_from_hash(fields, history, payload) if fields else None

    async def cancel(self, task_id: str, now: int, retention_ms: int) -> str:
        """-> "ok" | "missing" | the status that cannot be cancelled."""
        out = await self._cancel(keys=self._k(), args=[task_id, now, retention_ms])
        return str(out[0]) if out[0] != "bad" else str(out[1])

    async def retry(self, task_id: str, now: int) -> str:
        """-> "ok" | "missing" | the status that cannot be retried."""
        out = await self._retry(keys=self._k(), args=[task_id, now, self.actor])
        return str(out[0]) if out[0] != "bad" else str(out[1])

    async def delete(self, task_id: str) -> bool:
        return bool(await self._delete(keys=self._k(), args=[task_id]))

    async def page(self, query: TaskQuery) -> Page:
        index = self.keys.index(
            status=query.statuses[0] if len(query.statuses) == 1 else None, type_=query.type
        )
        filters: dict[str, list[str]] = {}
        if len(query.statuses) > 1:
            filters["status"] = list(query.statuses)
        if query.type and len(query.statuses) == 1:
            filters["type"] = [query.type]
        if query.queue:
            filters["queue"] = [query.queue]
        low = str(query.created_after) if query.created_after is not None else "-inf"
        high = str(query.created_before) if query.created_before is not None else "+inf"
        score, last = query.cursor if query.cursor else ("", "")
        args: list[Any] = [index, dumps(filters), low, high, score, last]
        rows, more, scanned_id, scanned_score = await self._page(
            keys=self._k(), args=[*args, query.limit, MAX_SCAN]
        )
        ids = rows[::2]
        async with self.client.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hgetall(self.keys.task(task_id))
                pipe.get(self.keys.payload(task_id))
            found = await pipe.execute()
        pairs = zip(found[::2], found[1::2], strict=True)
        tasks = [task_from_hash(fields, None, payload) for fields, payload in pairs if fields]
        next_cursor: tuple[int, str] | None = None
        if more and len(ids) == query.limit:
            next_cursor = (int(float(rows[-1])), ids[-1])
        elif more:
            next_cursor = (int(float(scanned_score)), scanned_id)
        return Page(tasks, next_cursor)

    async def stats(self, types: list[str], queues: list[str]) -> dict[str, Any]:
        statuses = [s.value for s in TaskStatus]
        async with self.client.pipeline(transaction=False) as pipe:
            for status in statuses:
                pipe.zcard(self.keys.index(status=status))
            for type_ in types:
                pipe.zcard(self.keys.index(type_=type_))
            for queue in queues:
                pipe.llen(self.keys.queue(queue))
                pipe.zcard(self.keys.dead_queue(queue))
            pipe.zcard(self.keys.schedule)
            pipe.zrange(self.keys.index(status=TaskStatus.PENDING.value), 0, 0, withscores=True)
            out = await pipe.execute()
        by_status = dict(zip(statuses, out[: len(statuses)], strict=True))
        rest = out[len(statuses) :]
        by_type = {t: n for t, n in zip(types, rest[: len(types)], strict=True) if n}
        rest = rest[len(types) :]
        queue_depth = {q: {"ready": rest[2 * i], "dead": rest[2 * i + 1]} for i, q in enumerate(queues)}
        oldest = rest[-1]
        return {
            "by_status": by_status,
            "by_type": by_type,
            "queues": queue_depth,
            "delayed": rest[-2],
            "oldest_pending_created_at": int(oldest[0][1]) if oldest else None,
        }
