"""The API's store on Redis: `RedisAsyncTaskStore` (storage/types.py `AsyncTaskStore`).

Submits go through a `Batcher` (concurrent creates share pipelines); the rest are one script or
one pipeline each. The mapping of domain types to hash fields and script arguments happens here
and in storage/codec.py only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import msgspec
import redis.asyncio as aioredis

from queue_system.domain.destinations import (
    BreakerState,
    DestinationReport,
    DestinationStatus,
    WaitLevel,
    WaitReason,
)
from queue_system.domain.models import Page, Task, TaskQuery, TaskStatus
from queue_system.errors import RedisNotReplicated
from queue_system.storage import scripts
from queue_system.storage.codec import dumps, flat_pairs, task_from_hash
from queue_system.storage.evalsha import Batcher, Replication
from queue_system.storage.failures import probe_writes
from queue_system.storage.keys import Keys
from queue_system.storage.types import Change, ChangeResult, MinuteCounts, NewTask, WorkerBeat

# Rows a listing may examine while filtering before it returns a partial page with a cursor.
MAX_SCAN = 5_000
# Destinations the stats summary counts (the most recently active; about 2 commands each).
MAX_DESTINATIONS_SCAN = 2_000


def _destination(row: list[Any], level: WaitLevel) -> DestinationStatus:
    d, state, in_flight, failures, parked, open_until, cooldown_ms, last_error, last_active = row
    breaker = BreakerState(state)
    return DestinationStatus(
        destination=d,
        state=breaker,
        in_flight=int(in_flight),
        failures=int(failures),
        parked=int(parked),
        next_probe_at=int(open_until) if breaker is BreakerState.OPEN and open_until else None,
        cooldown_ms=int(cooldown_ms) if cooldown_ms else None,
        last_error=last_error or None,
        last_active_at=int(float(last_active)),
        level=level,
    )


def _create_args(new: NewTask) -> list[Any]:
    """The create script's ARGV after the prefix (lua/create.lua)."""
    status = TaskStatus.SCHEDULED if new.due is not None else TaskStatus.PENDING
    args: list[Any] = [new.id, new.type, new.queue, new.now, status.value, new.due or ""]
    return [*args, new.fingerprint, new.payload_json, *flat_pairs(new.extra)]


def _change(reply: list[str]) -> ChangeResult:
    if reply[0] == "ok":
        return ChangeResult(Change.DONE)
    if reply[0] == "missing":
        return ChangeResult(Change.MISSING)
    return ChangeResult(Change.REFUSED, TaskStatus(reply[1]))


class RedisAsyncTaskStore:
    """Async storage for the API. `min_replicas` > 0: a create returns only once that many replicas
    acknowledged it (`WAIT`, up to `min_replicas_timeout_ms`), else raises RedisNotReplicated."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys | None = None,
        *,
        min_replicas: int = 0,
        min_replicas_timeout_ms: int = 1000,
    ) -> None:
        self.client = client
        self.keys = keys or Keys()
        # The marker write shares readiness's probe key: one more short-lived string, no new key.
        replication = (
            Replication(min_replicas, min_replicas_timeout_ms, self.keys.probe) if min_replicas else None
        )
        self._create = Batcher(client, scripts.CREATE, self.keys.prefix, replication)
        self._cancel = client.register_script(scripts.CANCEL)
        self._delete = client.register_script(scripts.DELETE)
        self._page = client.register_script(scripts.PAGE)
        self._retry = client.register_script(scripts.RETRY)
        self._destinations = client.register_script(scripts.DESTINATIONS)

    def _k(self) -> list[str]:
        return [self.keys.prefix]

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def probe_writes(self) -> None:
        """Raises the classified StorageError when Redis refuses a write (full, read-only)."""
        await probe_writes(self.client, self.keys.probe)

    async def worker_beats(self, limit: int) -> list[WorkerBeat]:
        """The `limit` freshest Dramatiq heartbeats: one per worker process Redis has heard from."""
        rows = await self.client.zrevrange(self.keys.heartbeats, 0, limit - 1, withscores=True)
        return [WorkerBeat(str(member), int(score)) for member, score in rows]

    async def count_workers_since(self, since_ms: int) -> int:
        """Worker processes with a heartbeat at or after `since_ms` (a read: readiness's probe)."""
        return int(await self.client.zcount(self.keys.heartbeats, since_ms, "+inf"))

    async def minute_counts(self, minutes: list[int]) -> list[MinuteCounts]:
        """FINISH's per-minute counters (minute = epoch ms // 60000); an absent minute counts 0."""
        async with self.client.pipeline(transaction=False) as pipe:
            for minute in minutes:
                pipe.hmget(self.keys.stats_minute(minute), ["completed", "failed", "retried"])
            rows: list[list[str | None]] = await pipe.execute()
        return [MinuteCounts(*(int(v or 0) for v in row)) for row in rows]

    async def create(self, new: NewTask) -> tuple[bool, str]:
        """-> (True, "") created and enqueued | (False, fingerprint of the task holding that id)."""
        out = await self._create(*_create_args(new))
        return (True, "") if out[0] == 1 else (False, out[1])

    async def create_many(self, news: list[NewTask]) -> list[tuple[bool, str] | Exception]:
        """`create` for each of `news`, in one pipeline (one WAIT for all with REDIS_MIN_REPLICAS):
        -> per task (True, "") | (False, fingerprint of the task holding that id) | the error
        Redis answered for it (a script error, OOM). Each create is still its own script, so each
        task is atomic alone; Redis reads a long pipeline in chunks and serves other clients in
        between, so a batch does not stall the single submits. Raises RedisNotReplicated when
        too few replicas confirmed the batch, and redis-py's errors when Redis cannot be reached."""
        replies = await self._create.many([_create_args(new) for new in news])
        out: list[tuple[bool, str] | Exception] = []
        for reply in replies:
            if isinstance(reply, RedisNotReplicated):
                raise reply
            if isinstance(reply, Exception):
                out.append(reply)
            else:
                out.append((True, "") if reply[0] == 1 else (False, reply[1]))
        return out

    async def get_many(self, task_ids: list[str]) -> list[Task | None]:
        """The tasks (without their attempt history), in one pipeline; None for an id not there."""
        async with self.client.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hgetall(self.keys.task(task_id))
                pipe.get(self.keys.payload(task_id))
            found = await pipe.execute()
        pairs = zip(found[::2], found[1::2], strict=True)
        return [task_from_hash(fields, None, payload) if fields else None for fields, payload in pairs]

    async def get(self, task_id: str) -> Task | None:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.task(task_id))
            pipe.get(self.keys.payload(task_id))
            pipe.lrange(self.keys.history(task_id), 0, -1)
            fields, payload, history = await pipe.execute()
        if not fields:
            return None
        task = task_from_hash(fields, history, payload)
        if task.waiting and task.dest:  # why it waits now, and when its level is next probed
            endpoint = task.waiting.endpoint or task.dest
            at_endpoint = task.waiting.level is WaitLevel.ENDPOINT
            breaker = self.keys.endpoint(endpoint) if at_endpoint else self.keys.dest(task.dest)
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hmget(breaker, ["state", "open_until"])
                ((state, open_until),) = await pipe.execute()
            closed = state in (None, BreakerState.CLOSED)
            probe_at = int(open_until) if state == BreakerState.OPEN and open_until else None
            reason = WaitReason.BUSY if closed else WaitReason.OPEN
            waiting = replace(task.waiting, reason=reason, next_probe_at=probe_at)
            task = msgspec.structs.replace(task, waiting=waiting)
        return task

    async def destinations(self, now: int, limit: int) -> DestinationReport:
        """The `limit` most recently active hosts and endpoints, and a summary of all (up to
        MAX_DESTINATIONS_SCAN of each)."""
        known, n_open, parked, rows, known_ep, open_ep, ep_rows = await self._destinations(
            keys=self._k(), args=[now, limit, MAX_DESTINATIONS_SCAN]
        )
        return DestinationReport(
            int(known),
            int(n_open),
            int(parked),
            [_destination(row, WaitLevel.HOST) for row in rows],
            [_destination(row, WaitLevel.ENDPOINT) for row in ep_rows],
            int(known_ep),
            int(open_ep),
        )

    async def cancel(self, task_id: str, now: int, retention_ms: int) -> ChangeResult:
        """A waiting task (pending, scheduled, retrying) is cancelled; others are REFUSED."""
        return _change(await self._cancel(keys=self._k(), args=[task_id, now, retention_ms]))

    async def retry(self, task_id: str, now: int) -> ChangeResult:
        """A failed or cancelled task runs again now; others are REFUSED."""
        return _change(await self._retry(keys=self._k(), args=[task_id, now]))

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
        if query.schedule_id:
            filters["schedule"] = [query.schedule_id]
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
