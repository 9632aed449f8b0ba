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
from queue_system.storage.redis_store import AsyncTaskStore, NewTask, Page

ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
QUEUES = ("default",)


@dataclass(frozen=True, slots=True)
class Submission:
    type: str
    payload: Any
    id: str | None = None
    queue: str = "default"
    # The field names are reported as the user wrote them: `url` in the shorthand, `payload.url` otherwise.
    payload_prefix: str = "payload"


class TaskService:
    def __init__(
        self, store: AsyncTaskStore, registry: Registry, *, retention_ms: int, clock: Clock = now_ms
    ) -> None:
        self.store = store
        self.registry = registry
        self.retention_ms = retention_ms
        self.clock = clock

    async def submit(self, sub: Submission) -> tuple[Task, bool]:
        """Store and enqueue atomically. -> (task, created). Same id + same request -> (existing, False)."""
        kind = self.registry.get(sub.type)
        payload = kind.decode(sub.payload, field_prefix=sub.payload_prefix)
        if sub.id is not None and not ID_PATTERN.match(sub.id):
            raise InvalidInput("id: 1-128 characters of A-Z a-z 0-9 . _ : -", field="id")
        if sub.queue not in QUEUES:
            raise InvalidInput(f"queue: must be one of {', '.join(QUEUES)}", field="queue")
        payload_json = msgspec.json.encode(payload).decode()
        fingerprint = hashlib.sha256(f"{sub.type}\0{sub.queue}\0{payload_json}".encode()).hexdigest()[:32]
        task_id = sub.id or str(uuid.uuid4())
        new = NewTask(
            id=task_id,
            type=sub.type,
            queue=sub.queue,
            payload_json=payload_json,
            fingerprint=fingerprint,
            now=self.clock(),
        )
        created, existing_fingerprint = await self.store.create(new)
        if created:  # one round trip on the hot path: the record is exactly what we just wrote
            return _as_task(new, payload), True
        if existing_fingerprint != fingerprint:
            raise Conflict(
                f"a different task with id {task_id!r} exists", location=f"/api/v1/tasks/{task_id}"
            )
        task = await self.store.get(task_id)
        if task is None:  # deleted between the two calls
            raise Conflict(f"task {task_id!r} was deleted meanwhile; submit again")
        return task, created

    async def get(self, task_id: str) -> Task:
        task = await self.store.get(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return task

    async def list(
        self, *, status: TaskStatus | None, type_: str | None, cursor: tuple[int, str] | None, limit: int
    ) -> Page:
        return await self.store.page(
            status=status.value if status else None, type_=type_, cursor=cursor, limit=limit
        )

    async def cancel(self, task_id: str) -> Task:
        outcome = await self.store.cancel(task_id, self.clock(), self.retention_ms)
        if outcome == "missing":
            raise TaskNotFound(task_id)
        if outcome != "ok":
            raise Conflict(f"a {outcome} task cannot be cancelled")
        return await self.get(task_id)

    async def delete(self, task_id: str) -> None:
        """Cancel first when possible (so it never runs again), then remove the record."""
        await self.store.cancel(task_id, self.clock(), self.retention_ms)
        if not await self.store.delete(task_id):
            raise TaskNotFound(task_id)


def _as_task(new: NewTask, payload: Any) -> Task:
    return Task(
        id=new.id,
        type=new.type,
        payload=msgspec.to_builtins(payload),
        status=TaskStatus.PENDING,
        queue=new.queue,
        attempts=0,
        created_at=new.now,
        updated_at=new.now,
        token=1,
    )
