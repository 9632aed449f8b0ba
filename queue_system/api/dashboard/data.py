"""What the overview shows beyond /api/v1/stats: per-minute counters, workers, destinations.

Read through the task service (service/tasks.py, service/health.py), never the store:
    minute_counts     completed, failed, retried per minute (FINISH's counters, kept 2 h); attempts
                      is their sum (each attempt FINISH records counts once, in one of the three)
    worker_processes  one Dramatiq heartbeat per worker process
    destinations      the hosts, the endpoints and their breakers (the destinations' Lua)
Missing keys show as empty: a chart with no points, "no workers", "no destinations reported".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from queue_system.domain.destinations import DestinationStatus
from queue_system.domain.redaction import redact_text, redact_url
from queue_system.service.health import worker_processes
from queue_system.service.tasks import TaskService

MINUTES = 60
COUNTERS = ("completed", "failed", "retried")
MAX_DESTINATIONS = 50
MAX_WORKERS = 200


def _now(now_ms: int | None) -> int:
    return now_ms if now_ms is not None else int(time.time() * 1000)


async def series(service: TaskService, now_ms: int | None = None) -> dict[str, list[int]]:
    """The last hour, one point per minute: {"minute": [epoch s...], "completed": [...], ...}."""
    last = _now(now_ms) // 60_000
    minutes = list(range(last - MINUTES + 1, last + 1))
    counts = await service.minute_counts(minutes)
    out: dict[str, list[int]] = {"minute": [m * 60 for m in minutes]}
    out["completed"] = [c.completed for c in counts]
    out["failed"] = [c.failed for c in counts]
    out["retried"] = [c.retried for c in counts]
    out["attempts"] = [c.completed + c.failed + c.retried for c in counts]
    return out


def totals(points: dict[str, list[int]]) -> dict[str, Any]:
    done = sum(points["completed"]) + sum(points["failed"])
    failed = sum(points["failed"])
    return {
        "completed": sum(points["completed"]),
        "failed": failed,
        "retried": sum(points["retried"]),
        "attempts": sum(points["attempts"]),
        "failure_rate": (failed / done) if done else None,
    }


@dataclass(frozen=True, slots=True)
class Worker:
    id: str
    age_s: float


async def workers(service: TaskService, now_ms: int | None = None) -> list[Worker]:
    now = _now(now_ms)
    found = await worker_processes(service, MAX_WORKERS)
    ages = (Worker(w.id, max(0.0, (now - w.last_heartbeat) / 1000)) for w in found)
    return sorted(ages, key=lambda w: w.age_s)


def _row(d: DestinationStatus) -> dict[str, Any]:
    """One table row; `last_error` redacted, as every reader sees it."""
    return {
        "name": redact_url(d.destination),
        "level": d.level.value,
        "state": d.state.value,
        "failures": d.failures,
        "inflight": d.in_flight,
        "parked": d.parked,
        "open_until": d.next_probe_at,
        "last_error": redact_text(d.last_error) if d.last_error else None,
    }


async def destinations(service: TaskService) -> list[dict[str, Any]]:
    """The MAX_DESTINATIONS most recently active hosts, then as many endpoints (domain/destinations.py),
    each with its breaker."""
    report = await service.destinations(MAX_DESTINATIONS)
    return [_row(d) for d in (*report.destinations, *report.endpoints)]
