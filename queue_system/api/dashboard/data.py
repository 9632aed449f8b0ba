"""What the overview shows beyond /api/v1/stats: per-minute counters, workers, destinations.

Read-only views of keys other parts own (named by storage/keys.py):
    stats_minute(minute)         hash  completed, failed, retried (FINISH; expiry 2 h); minute =
                                       epoch ms // 60000; attempts is their sum (each attempt
                                       FINISH records counts once, in one of the three)
    heartbeats                   zset  Dramatiq broker id -> last heartbeat ms (one per worker process)
    dests, dest(d), dest_inflight(d), dest_parked(d), and endpoints, endpoint(e),
    endpoint_inflight(e), endpoint_parked(e)
                                       the hosts, the endpoints and their breakers (the
                                       destinations' Lua)
Missing keys show as empty: a chart with no points, "no workers", "no destinations reported".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from queue_system.domain.redaction import redact_text, redact_url
from queue_system.storage.keys import Keys

MINUTES = 60
COUNTERS = ("completed", "failed", "retried")
MAX_DESTINATIONS = 50


async def series(client: aioredis.Redis, keys: Keys, now_ms: int | None = None) -> dict[str, list[int]]:
    """The last hour, one point per minute: {"minute": [epoch s...], "completed": [...], ...}."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    last = now // 60_000
    minutes = list(range(last - MINUTES + 1, last + 1))
    async with client.pipeline(transaction=False) as pipe:
        for minute in minutes:
            pipe.hmget(keys.stats_minute(minute), list(COUNTERS))
        rows: list[list[str | None]] = await pipe.execute()
    out: dict[str, list[int]] = {"minute": [m * 60 for m in minutes]}
    for i, name in enumerate(COUNTERS):
        out[name] = [int(row[i] or 0) for row in rows]
    out["attempts"] = [sum(counts) for counts in zip(*(out[name] for name in COUNTERS), strict=True)]
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


async def workers(client: aioredis.Redis, keys: Keys, now_ms: int | None = None) -> list[Worker]:
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    rows = await client.zrange(keys.heartbeats, 0, 199, withscores=True)
    return sorted(
        (Worker(str(member), max(0.0, (now - score) / 1000)) for member, score in rows),
        key=lambda w: w.age_s,
    )


async def destinations(client: aioredis.Redis, keys: Keys) -> list[dict[str, Any]]:
    """The MAX_DESTINATIONS most recently active hosts, then as many endpoints (domain/destinations.py),
    each with its breaker; `last_error` redacted, as every reader sees it."""
    levels = (
        ("host", keys.dests, keys.dest, keys.dest_inflight, keys.dest_parked),
        ("endpoint", keys.endpoints, keys.endpoint, keys.endpoint_inflight, keys.endpoint_parked),
    )
    rows = []
    for level, owner, breaker, inflight, parked in levels:
        names = await client.zrevrange(owner, 0, MAX_DESTINATIONS - 1)
        if not names:
            continue
        async with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(breaker(name))
                pipe.zcard(inflight(name))
                pipe.zcard(parked(name))
            out = await pipe.execute()
        for i, name in enumerate(names):
            state, in_flight, waiting = out[3 * i : 3 * i + 3]
            error = state.get("last_error")
            rows.append(
                {
                    "name": redact_url(name),
                    "level": level,
                    "state": state.get("state", "closed"),
                    "failures": int(state.get("failures") or 0),
                    "inflight": in_flight,
                    "parked": waiting,
                    "open_until": int(state["open_until"]) if state.get("open_until") else None,
                    "last_error": redact_text(error) if error else None,
                }
            )
    return rows
