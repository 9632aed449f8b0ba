"""Tasks in any status, fast, by way of the storage scripts themselves (create, claim, finish,
cancel): for the bulk operation tests, which need thousands of failed tasks without delivering them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from queue_system.domain.models import Attempt, AttemptResult, Outcome, TaskStatus
from queue_system.domain.retry import Decision
from queue_system.storage import scripts
from queue_system.storage.codec import flat_pairs
from queue_system.storage.keys import Keys
from queue_system.storage.types import Claim as Claimed
from queue_system.storage.worker_store import RedisTaskStore

RETENTION_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class Seed:
    id: str
    status: str = "failed"  # pending | scheduled | failed | cancelled | completed | processing
    created_at: int = 1_000
    type: str = "webhook"
    queue: str = "default"
    url: str | None = "http://127.0.0.1:9/hook"  # its destination (host and endpoint) when set
    schedule_id: str | None = None


def _extra(seed: Seed) -> dict[str, str]:
    extra: dict[str, str] = {}
    if seed.url:
        scheme, rest = seed.url.split("://", 1)
        host, _, path = rest.partition("/")
        extra["dest"], extra["ep"] = f"{scheme}://{host}", f"/{path}"
    if seed.schedule_id:
        extra["schedule"] = seed.schedule_id
    return extra


def seed_tasks(client: redis.Redis, seeds: Iterable[Seed], keys: Keys | None = None) -> None:
    """Each task created as a submit creates it, then moved to its status by the scripts a worker
    and the API use (a failed one: claimed, its attempt recorded as a permanent failure)."""
    keys = keys or Keys()
    create = client.register_script(scripts.CREATE)
    cancel = client.register_script(scripts.CANCEL)
    store = RedisTaskStore(client, keys)
    try:
        for s in seeds:
            payload = '{"url":"%s"}' % (s.url or "http://x")
            due = s.created_at + 10**9 if s.status == "scheduled" else ""
            status = "scheduled" if due else "pending"
            args: list[Any] = [s.id, s.type, s.queue, s.created_at, status, due, "fp", payload]
            create(keys=[keys.prefix], args=[*args, *flat_pairs(_extra(s))])
            if s.status in ("processing", "failed", "completed"):
                claimed = store.claim(s.id, 1, s.created_at + 1, s.created_at + 10**9)
                assert isinstance(claimed, Claimed), claimed
                if s.status != "processing":
                    _finish(store, claimed, TaskStatus(s.status), s.created_at + 2)
            if s.status == "cancelled":
                cancel(keys=[keys.prefix], args=[s.id, s.created_at + 2, RETENTION_MS])
    finally:
        store.close()


def _finish(store: RedisTaskStore, claimed: Claimed, status: TaskStatus, now: int) -> None:
    ok = status is TaskStatus.COMPLETED
    outcome = Outcome.SUCCESS if ok else Outcome.PERMANENT
    attempt = Attempt(n=1, started_at=now, duration_ms=1, outcome=outcome, status_code=200 if ok else 410)
    result = AttemptResult(outcome, status_code=attempt.status_code, error=None if ok else "gone")
    store.finish(claimed.task, attempt, Decision(status), result, now=now, retention_ms=RETENTION_MS)


def status_of(client: redis.Redis, task_id: str) -> str | None:
    value = client.hget(Keys().task(task_id), "status")
    return str(value) if value is not None else None


__all__ = ["Seed", "seed_tasks", "status_of"]
