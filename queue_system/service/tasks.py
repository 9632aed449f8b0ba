"""Submitting, reading, listing, cancelling and deleting tasks (the API's use cases).

The API talks to this layer only: it never sees the store. A task's own retry options are resolved
here, at submit, into the typed policy stored on the task.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import redis

from queue_system.config.settings import WorkerSettings
from queue_system.domain.destinations import DestinationReport
from queue_system.domain.models import Page, Task, TaskQuery, TaskStatus
from queue_system.domain.queues import QUEUES
from queue_system.domain.retry import (
    RetryOverride,
    RetryPolicy,
    encode_policy,
    override_problems,
    resolve_policy,
)
from queue_system.errors import Conflict, InvalidInput, QueueSystemError, StorageFault, TaskNotFound
from queue_system.kinds.registry import Registry, TaskKind, backoff_policy, fixed_policy, policy_bounds
from queue_system.service.clock import now_ms
from queue_system.storage.failures import classify
from queue_system.storage.types import AsyncTaskStore, Change, MinuteCounts, NewTask

ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # fullmatch: `$` would let a trailing "\n" in
# Ids that are route segments beside `{id}` (POST /api/v1/tasks/batch, /api/v1/tasks/actions/...):
# a task called so would have URLs that name the route instead (GET /api/v1/tasks/batch: 405).
RESERVED_IDS = frozenset({"batch", "actions"})
MAX_SCHEDULE_AHEAD_MS = 366 * 86_400_000
# One item of a batch submit: (task, created) as `submit` returns, or what refused it.
ItemResult = tuple[Task, bool] | QueueSystemError


def check_client_id(value: str) -> None:
    """A client's id (of a task or a schedule) is a URL path segment of its own: 422 naming `id`
    unless it is one, and only one, whatever the HTTP client does to it."""
    if not ID_PATTERN.fullmatch(value):
        raise InvalidInput("1-128 characters of A-Z a-z 0-9 . _ : -", field="id")
    if value in (".", ".."):  # HTTP clients rewrite these path segments: the URL would be lost
        raise InvalidInput("`.` and `..` cannot be ids: HTTP clients rewrite them in a URL", field="id")
    if value in RESERVED_IDS:
        raise InvalidInput(f"`{value}` names a route (/api/v1/tasks/{value}): pick another id", field="id")


@dataclass(frozen=True, slots=True)
class Submission:
    type: str
    payload: Any
    id: str | None = None
    queue: str = "default"
    retry: RetryOverride | None = None  # the task's own retry options; None: the kind's policy
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
        retry_defaults: WorkerSettings | None = None,
        batch_max: int = 1000,
    ) -> None:
        self.store = store
        self.registry = registry
        self.retention_ms = retention_ms
        self.max_timeout_ms = max_timeout_ms
        # The server's retry defaults (WORKER_RETRY_*, WORKER_BACKOFF_*) a task's own options start from.
        self.retry_defaults = retry_defaults or WorkerSettings()
        self.batch_max = batch_max  # TASK_BATCH_MAX: most items of one submit_many

    async def submit(self, sub: Submission) -> tuple[Task, bool]:
        """Store and enqueue atomically. -> (task, created). Same id + same request -> (existing, False)."""
        new, payload, policy = self.prepare(sub, now_ms())
        task_id = new.id
        dest, endpoint = new.extra.get("dest"), None
        if dest is not None:
            endpoint = dest + new.extra["ep"]
        created, existing_fingerprint = await self.store.create(new)
        if created:  # one round trip on the hot path: the record is exactly what we just wrote
            return _as_task(new, payload, sub, policy, dest, endpoint), True
        if existing_fingerprint != new.fingerprint:
            raise Conflict(f"a different task with id {task_id!r} exists", task_id=task_id)
        task = await self.store.get(task_id)
        if task is None:  # deleted between the two calls
            raise Conflict(f"task {task_id!r} was deleted meanwhile; submit again")
        return task, False

    async def submit_many(self, items: Sequence[Submission | InvalidInput]) -> list[ItemResult]:
        """A batch submit: each item checked and created on its own, in order -> per item
        (task, created) or the error that item met. An InvalidInput item (the caller's decoding
        failed) is passed through. The valid items' creates go to Redis in one pipeline (one
        WAIT for all with REDIS_MIN_REPLICAS: raises RedisNotReplicated for the batch); an id
        that repeats inside the batch behaves as a resubmit of the first (200 or 409)."""
        now = now_ms()
        results: list[ItemResult | None] = [None] * len(items)
        ready: list[tuple[int, NewTask, Any, RetryPolicy | None, Submission]] = []
        ids = new_ids(len(items))  # one read of the random source for the whole batch
        for i, item in enumerate(items):
            if isinstance(item, InvalidInput):
                results[i] = item
                continue
            try:
                ready.append((i, *self.prepare(item, now, ids[i]), item))
            except InvalidInput as exc:
                results[i] = exc
        replies = await self.store.create_many([new for _, new, *_ in ready]) if ready else []
        again: list[int] = []  # items whose id was there with the same request: the existing task
        for (i, new, payload, policy, sub), reply in zip(ready, replies, strict=True):
            if isinstance(reply, Exception):
                results[i] = (
                    classify(reply) if isinstance(reply, redis.RedisError) else StorageFault(str(reply))
                )
            elif reply[0]:
                dest = new.extra.get("dest")
                endpoint = dest + new.extra["ep"] if dest is not None else None
                results[i] = (_as_task(new, payload, sub, policy, dest, endpoint), True)
            elif reply[1] != new.fingerprint:
                results[i] = Conflict(f"a different task with id {new.id!r} exists", task_id=new.id)
            else:
                again.append(i)
        if again:
            by_index = {i: new.id for i, new, *_ in ready}
            for i, task in zip(again, await self.store.get_many([by_index[i] for i in again]), strict=True):
                gone = Conflict(f"task {by_index[i]!r} was deleted meanwhile; submit again")
                results[i] = (task, False) if task is not None else gone
        return [r for r in results if r is not None]

    def prepare(
        self, sub: Submission, now: int, fresh_id: str | None = None
    ) -> tuple[NewTask, Any, RetryPolicy | None]:
        """A submit checked and resolved into the task to store (the create path; a schedule's
        template goes through it too: service/schedules.py), with the id `fresh_id` (else a new
        one) unless it names its own. Raises InvalidInput."""
        kind = self.registry.get(sub.type)
        payload = kind.decode(sub.payload, field_prefix=sub.payload_prefix)
        self._check_options(sub)
        payload_bytes = msgspec.json.encode(payload)  # stored as text, fingerprinted as these bytes
        payload_json = payload_bytes.decode()
        policy = self._policy(kind, sub.retry)
        extra: dict[str, str] = {}
        if policy is not None:  # a task on its kind's policy stores nothing: memory per task counts
            extra["retry"] = encode_policy(policy)
        if sub.timeout_ms is not None:
            extra["timeout_ms"] = str(sub.timeout_ms)
        where = kind.destination_of(payload)
        if where is not None:  # its host's and endpoint's caps and breakers apply (lua/destinations.lua)
            # The endpoint is stored after its host (`ep`: the path, or `#key`): bytes per task count.
            extra["dest"], extra["ep"] = str(where), where.path
        due = self._due(sub, now)
        # The options as requested (not as resolved): resending the same request stays the same task.
        requested = msgspec.json.encode(sub.retry.requested).decode() if sub.retry else ""
        options = f"{sub.queue}\0{requested}\0{sub.timeout_ms}\0{sub.delay_ms}\0{sub.run_at}"
        digest = hashlib.sha256(f"{sub.type}\0".encode())
        digest.update(payload_bytes)
        digest.update(f"\0{options}".encode())
        fingerprint = digest.hexdigest()[:32]
        new = NewTask(
            id=sub.id or fresh_id or new_id(),
            type=sub.type,
            queue=sub.queue,
            payload_json=payload_json,
            fingerprint=fingerprint,
            now=now,
            due=due,
            extra=extra,
        )
        return new, payload, policy

    def _policy(self, kind: TaskKind, override: RetryOverride | None) -> RetryPolicy | None:
        if override is None:
            return None
        w = self.retry_defaults
        policy = resolve_policy(override, kind.policy(w), fixed_policy(w), backoff_policy(w))
        for field, message in override_problems(override, policy, policy_bounds(w)):
            raise InvalidInput(message, field=field)  # the server's bounds: e.g. no interval of 0s
        return policy

    def _check_options(self, sub: Submission) -> None:
        if sub.id is not None:
            check_client_id(sub.id)
        if sub.queue not in QUEUES:
            raise InvalidInput(f"must be one of {', '.join(QUEUES)}", field="queue")
        if sub.timeout_ms is not None and not 1 <= sub.timeout_ms <= self.max_timeout_ms:
            raise InvalidInput(f"must be between 1ms and {self.max_timeout_ms // 1000}s", field="timeout")
        if sub.delay_ms is not None and sub.run_at is not None:
            raise InvalidInput("give either `delay` or `run_at`, not both", field="delay")

    def _due(self, sub: Submission, now: int) -> int | None:
        due = now + sub.delay_ms if sub.delay_ms is not None else sub.run_at
        if due is None or due <= now:
            return None
        if due - now > MAX_SCHEDULE_AHEAD_MS:
            field = "delay" if sub.delay_ms is not None else "run_at"
            raise InvalidInput("at most 366 days ahead", field=field)
        return due

    async def ping(self) -> None:
        """Raises if Redis does not answer (readiness)."""
        await self.store.ping()

    async def get(self, task_id: str) -> Task:
        task = await self.store.get(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return task

    async def list(self, query: TaskQuery) -> Page:
        return await self.store.page(query)

    async def retry(self, task_id: str) -> Task:
        """Run a failed or cancelled task again now (history kept, recorded as a manual attempt)."""
        outcome = await self.store.retry(task_id, now_ms())
        if outcome.change is Change.MISSING:
            raise TaskNotFound(task_id)
        if outcome.change is Change.REFUSED:
            raise Conflict(f"a {outcome.status} task cannot be retried; only failed or cancelled ones")
        return await self.get(task_id)

    async def stats(self) -> dict[str, Any]:
        stats = await self.store.stats(self.registry.names(), list(QUEUES))
        oldest = stats.pop("oldest_pending_created_at")
        now = now_ms()
        stats["oldest_pending_age_ms"] = max(0, now - oldest) if oldest is not None else None
        report = await self.store.destinations(now, 0)
        stats["destinations"] = {
            "known": report.known,
            "open": report.open,
            "parked": report.parked,
            "endpoints_known": report.known_endpoints,
            "endpoints_open": report.open_endpoints,
        }
        return stats

    async def destinations(self, limit: int) -> DestinationReport:
        """The `limit` most recently active webhook destinations and a summary of all."""
        return await self.store.destinations(now_ms(), limit)

    async def minute_counts(self, minutes: Sequence[int]) -> Sequence[MinuteCounts]:
        """What finished in each minute (epoch ms // 60000; kept 2 h): the dashboard's chart."""
        return await self.store.minute_counts([*minutes])

    async def cancel(self, task_id: str) -> Task:
        outcome = await self.store.cancel(task_id, now_ms(), self.retention_ms)
        if outcome.change is Change.MISSING:
            raise TaskNotFound(task_id)
        if outcome.change is Change.REFUSED:
            raise Conflict(f"a {outcome.status} task cannot be cancelled")
        return await self.get(task_id)

    async def delete(self, task_id: str) -> None:
        """Cancel first when possible (so it never runs again), then remove the record."""
        await self.store.cancel(task_id, now_ms(), self.retention_ms)
        if not await self.store.delete(task_id):
            raise TaskNotFound(task_id)


def new_id() -> str:
    """A random (version 4) UUID in its usual text form, as `str(uuid.uuid4())` spells it."""
    return new_ids(1)[0]


def new_ids(n: int) -> list[str]:
    """`n` of `new_id`, from one read of os.urandom (what uuid4 reads), without uuid.UUID's checks
    and int arithmetic: ~0.5 us an id in a batch, not 2.7 (a syscall and a UUID object each)."""
    text = os.urandom(16 * n).hex()
    out = []
    for at in range(0, 32 * n, 32):
        h = text[at : at + 32]
        variant = "89ab"[int(h[16], 16) & 3]
        out.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}")
    return out


def _as_task(
    new: NewTask,
    payload: Any,
    sub: Submission,
    policy: RetryPolicy | None,
    dest: str | None,
    endpoint: str | None,
) -> Task:
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
        retry=policy,
        timeout_ms=sub.timeout_ms,
        next_attempt_at=new.due,
        dest=dest,
        endpoint=endpoint,
    )
