"""Readiness: does Redis answer, and how many worker processes have a fresh Dramatiq heartbeat.

Every Dramatiq consumer command stamps its broker id into the namespace's `__heartbeats__` zset
(an idle consumer polls every 100 ms), so a worker process that consumes is in it with a score
of the last few seconds. Entries of dead processes linger until someone removes them: only
fresh ones count.
"""

from __future__ import annotations

from dataclasses import dataclass

from queue_system.service.clock import now_ms
from queue_system.service.tasks import TaskService

FRESH_MS = 10_000  # the worker's own stall bound (worker/health.py CONSUMER_STALE_S)


@dataclass(frozen=True, slots=True)
class Readiness:
    redis_ok: bool
    workers: int  # worker processes with a heartbeat in the last FRESH_MS
    error: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerProcess:
    id: str  # Dramatiq's broker id: one per worker process
    last_heartbeat: int  # epoch ms
    alive: bool  # heartbeat in the last FRESH_MS


async def worker_processes(service: TaskService, limit: int = 200) -> list[WorkerProcess]:
    """The worker processes Redis has heard from, freshest first (dead ones linger until the
    reconciler of a live worker forgets them, WORKER_LEASE after their last heartbeat)."""
    rows = await service.store.client.zrevrange(service.store.keys.heartbeats, 0, limit - 1, withscores=True)
    fresh_after = now_ms() - FRESH_MS
    return [WorkerProcess(str(member), int(score), score >= fresh_after) for member, score in rows]


async def readiness(service: TaskService) -> Readiness:
    store = service.store
    key = store.keys.heartbeats
    try:
        workers = await store.client.zcount(key, now_ms() - FRESH_MS, "+inf")
    except Exception as exc:  # any failure to reach Redis means not ready
        return Readiness(False, 0, f"{type(exc).__name__}: {exc}")
    return Readiness(True, int(workers))
