"""Submitting, reading, listing, cancelling and deleting tasks (the API's use cases)."""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from queue_system.domain.models import Task, TaskStatus
from queue_system.errors import Conflict, InvalidInput, TaskNotFound
from queue_system.kinds.registry import Registry
from queue_system.service.clock import Clock, now_ms
from queue_system.storage.redis_store import AsyncTaskStore, Change, NewTask, Page, Query

ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
QUEUES = ("default", "priority")
MAX_SCHEDULE_AHEAD_MS = 366 * 86_400_000


@dataclass(frozen=True, slots=True)
class Submission:
    type: str
    payload: Any
    id: str | None = None
    queue: str = "default"
    retry: dict[str, Any] | None = None  # a partial policy override, durations in ms
    timeout_ms: int | None = None
    delay_ms: int | None = None
    run_at: int | None = None  # epoch ms
    # The field names are reported as the user wrote them: `url` in the shorthand, `payload.url` otherwise.
    payload_prefix: str = "payload"


class TaskService:
    def __init__(
        self,
        store: AsyncTaskStore,
        registry: Registry,
        *,
        retention_ms: int,
        max_timeout_ms: int = 15 * 60_000,
        clock: Clock = now_ms,
    ) -> None:
        self.store = store
        self.registry = registry
        self.retention_ms = retention_ms
        self.max_timeout_ms = max_timeout_ms
        self.clock = clock

    async def submit(self, sub: Submission) -> tuple[Task, bool]:
        """Store and enqueue atomically. -> (task, created). Same id + same request -> (existing, False)."""
        kind = self.registry.get(sub.type)
        payload = kind.decode(sub.payload, field_prefix=sub.payload_prefix)
        self._check_options(sub)
        now = self.clock()
        payload_json = msgspec.json.encode(payload).decode()
        extra: dict[str, str] = {}
        if sub.retry:
            extra["retry"] = msgspec.json.encode(sub.retry).decode()
        if sub.timeout_ms is not None:
            extra["timeout_ms"] = str(sub.timeout_ms)
        due = self._due(sub, now)
        options = f"{sub.queue}\0{extra.get('retry', '')}\0{sub.timeout_ms}\0{sub.delay_ms}\0{sub.run_at}"
        fingerprint = hashlib.sha256(f"{sub.type}\0{payload_json}\0{options}".encode()).hexdigest()[:32]
        task_id = sub.id or str(uuid.uuid4())
        new = NewTask(
            id=task_id,
            type=sub.type,
            queue=sub.queue,
            payload_json=payload_json,
            fingerprint=fingerprint,
            now=now,
            due=due,
            extra=extra,
        )
        created, existing_fingerprint = await self.store.create(new)
        if created:  # one round trip on the hot path: the record is exactly what we just wrote
            return _as_task(new, payload, sub), True
        if existing_fingerprint != fingerprint:
            raise Conflict(
                f"a different task with id {task_id!r} exists", location=f"/api/v1/tasks/{task_id}"
            )
        task = await self.store.get(task_id)
        if task is None:  # deleted between the two calls
            raise Conflict(f"task {task_id!r} was deleted meanwhile; submit again")
        return task, False

    def _check_options(self, sub: Submission) -> None:
        if sub.id is not None and not ID_PATTERN.match(sub.id):
            raise InvalidInput("id: 1-128 characters of A-Z a-z 0-9 . _ : -", field="id")
        if sub.queue not in QUEUES:
            raise InvalidInput(f"queue: must be one of {', '.join(QUEUES)}", field="queue")
        if sub.timeout_ms is not None and not 1 <= sub.timeout_ms <= self.max_timeout_ms:
            raise InvalidInput(
                f"timeout: must be between 1ms and {self.max_timeout_ms // 1000}s", field="timeout"
            )
        if sub.delay_ms is not None and sub.run_at is not None:
            raise InvalidInput("delay: give either `delay` or `run_at`, not both", field="delay")

    def _due(self, sub: Submission, now: int) -> int | None:
        due = now + sub.delay_ms if sub.delay_ms is not None else sub.run_at
        if due is None or due <= now:
            return None
        if due - now > MAX_SCHEDULE_AHEAD_MS:
            field = "delay" if sub.delay_ms is not None else "run_at"
            raise InvalidInput(f"{field}: at most 366 days ahead", field=field)
        return due

    async def get(self, task_id: str) -> Task:
        task = await self.store.get(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return task

    async def list(self, query: Query) -> Page:
        return await self.store.page(query)

    async def retry(self, task_id: str) -> Task:
        """Run a failed or cancelled task again now (history kept, recorded as a manual attempt)."""
        outcome = await self.store.retry(task_id, self.clock())
        if outcome.change is Change.MISSING:
            raise TaskNotFound(task_id)
        if outcome.change is Change.REFUSED:
            raise Conflict(f"a {outcome.status} task cannot be retried; only failed or cancelled ones")
        return await self.get(task_id)

    async def stats(self) -> dict[str, Any]:
        stats = await self.store.stats(self.registry.names(), list(QUEUES))
        oldest = stats.pop("oldest_pending_created_at")
        stats["oldest_pending_age_ms"] = max(0, self.clock() - oldest) if oldest is not None else None
        return stats

    async def cancel(self, task_id: str) -> Task:
        outcome = await self.store.cancel(task_id, self.clock(), self.retention_ms)
        if outcome.change is Change.MISSING:
            raise TaskNotFound(task_id)
        if outcome.change is Change.REFUSED:
            raise Conflict(f"a {outcome.status} task cannot be cancelled")
        return await self.get(task_id)

    async def delete(self, task_id: str) -> None:
        """Cancel first when possible (so it never runs again), then remove the record."""
        await self.store.cancel(task_id, self.clock(), self.retention_ms)
        if not await self.store.delete(task_id):
            raise TaskNotFound(task_id)


def _as_task(new: NewTask, payload: Any, sub: Submission) -> Task:
    return Task(
        id=new.id,
        type=new.type,
        payload=msgspec.to_builtins(payload),
        status=TaskStatus.SCHEDULED if new.due is not None else TaskStatus.PENDING,
        queue=new.queue,
        attempts=0,
        created_at=new.now,
        updated_at=new.now,
        token=1,
        retry=sub.retry,
        timeout_ms=sub.timeout_ms,
        next_attempt_at=new.due,
    )
