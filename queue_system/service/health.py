"""Readiness: does Redis answer and take writes, and how many worker processes have a fresh
Dramatiq heartbeat.

A full Redis (maxmemory under `noeviction`) or a read-only replica answers PING and every read, so
readiness also writes (`WriteProbe`: one SET with an expiry, at most once a second per process,
since load balancers may poll often) and says what Redis refused, in the classification of
storage/failures.py.

Every Dramatiq consumer command stamps its broker id into the namespace's `__heartbeats__` zset
(an idle consumer polls every 100 ms), so a worker process that consumes is in it with a score
of the last few seconds. Entries of dead processes linger until someone removes them: only
fresh ones count.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import redis

from queue_system.errors import RedisUnreachable, StorageError, StorageUnavailable
from queue_system.service.clock import now_ms
from queue_system.service.tasks import TaskService
from queue_system.storage.failures import classify

FRESH_MS = 10_000  # the worker's own stall bound (worker/health.py CONSUMER_STALE_S)


@dataclass(frozen=True, slots=True)
class Readiness:
    redis_ok: bool  # Redis answered (if only with an error reply)
    workers: int  # worker processes with a heartbeat in the last FRESH_MS
    error: str | None = None  # what is wrong, truthfully: unreachable, out of memory, read-only ...
    redis: str = "ok"  # "ok", or what failed: "unreachable", "refuses-writes", "storage-error"

    @property
    def ready(self) -> bool:
        return self.redis == "ok"


def _failed(error: StorageError, workers: int = 0) -> Readiness:
    if isinstance(error, RedisUnreachable):
        return Readiness(False, workers, str(error), redis="unreachable")
    kind = "refuses-writes" if isinstance(error, StorageUnavailable) else "storage-error"
    return Readiness(True, workers, str(error), redis=kind)  # it answered, if only to refuse


@dataclass(frozen=True, slots=True)
class WorkerProcess:
    id: str  # Dramatiq's broker id: one per worker process
    last_heartbeat: int  # epoch ms
    alive: bool  # heartbeat in the last FRESH_MS


async def worker_processes(service: TaskService, limit: int = 200) -> list[WorkerProcess]:
    """The worker processes Redis has heard from, freshest first (dead ones linger until the
    reconciler of a live worker forgets them, WORKER_LEASE after their last heartbeat)."""
    fresh_after = now_ms() - FRESH_MS
    return [WorkerProcess(b.id, b.at, b.at >= fresh_after) for b in await service.store.worker_beats(limit)]


class WriteProbe:
    """This process's write probe, run at most once per `every_s`; the result is kept between."""

    def __init__(self, every_s: float = 1.0) -> None:
        self.every_s = every_s
        self._at: float | None = None
        self._error: StorageError | None = None
        self._lock = asyncio.Lock()  # concurrent polls share one probe

    async def check(self, service: TaskService) -> StorageError | None:
        """None when Redis took the probe's write, else what its refusal means."""
        async with self._lock:
            if self._at is None or time.monotonic() - self._at >= self.every_s:
                try:
                    await service.store.probe_writes()
                    self._error = None
                except StorageError as exc:
                    self._error = exc
                self._at = time.monotonic()
            return self._error


async def readiness(service: TaskService, writes: WriteProbe | None = None) -> Readiness:
    """Redis answers (a read, which also counts the live workers); with `writes`, it takes writes."""
    try:
        workers = await service.store.count_workers_since(now_ms() - FRESH_MS)
    except redis.RedisError as exc:  # any failure to read means not ready
        return _failed(classify(exc))
    refused = await writes.check(service) if writes is not None else None
    if refused is None:
        return Readiness(True, workers)
    return _failed(refused, workers)  # gone since the read, or refusing writes
