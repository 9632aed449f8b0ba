"""What the stores take and give, and the two stores' Protocols: the worker's (`TaskStore`, sync,
one connection per thread) and the API's (`AsyncTaskStore`).

Callers (service/, worker/) depend on these names only; the Redis implementations are
storage/worker_store.py (`RedisTaskStore`) and storage/task_store.py (`RedisAsyncTaskStore`),
built once by the composition roots (api/app.py, worker/runtime.py). The store speaks domain types
(`Task`, `Attempt`, `Decision`, `AttemptResult`) and the result types below; the mapping to hash
fields and script arguments happens in the implementations and storage/codec.py only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import msgspec

from queue_system.domain.destinations import DestinationReport
from queue_system.domain.models import Attempt, AttemptResult, Page, Task, TaskQuery, TaskStatus
from queue_system.domain.retry import Decision


class NewTask(msgspec.Struct, frozen=True):
    id: str
    type: str
    queue: str
    payload_json: str
    fingerprint: str
    now: int
    due: int | None = None  # epoch ms; set for a scheduled task
    extra: dict[str, str] = msgspec.field(default_factory=dict)  # retry, timeout_ms, ...


class SkipReason(StrEnum):
    """Why a message starts no attempt (Dramatiq delivers at least once: duplicates are normal)."""

    MISSING = "missing"  # the task is gone (deleted, or purged after its retention)
    NOT_CLAIMABLE = "not_claimable"  # its status is not pending/retrying: running, finished, cancelled
    STALE = "stale"  # another message (a newer token) is the task's current one
    PARKED = "parked"  # its destination cannot take it now: it waits, parked, without a message
    PAUSED = "paused"  # its queue is paused: it waits, held, without a message (storage/queues.py)


class Claim(msgspec.Struct, frozen=True):
    """The attempt starts: the task as it now is (`processing`, attempt counted, leased)."""

    task: Task


class Skip(msgspec.Struct, frozen=True):
    reason: SkipReason
    status: TaskStatus | None = None  # for NOT_CLAIMABLE
    why: str | None = None  # for PARKED: "open" | "busy" (domain.destinations.WaitReason)
    level: str | None = None  # for PARKED: "host" | "endpoint" (domain.destinations.WaitLevel)


class Finished(msgspec.Struct, frozen=True):
    recorded: bool  # False: the lease had been taken over; the attempt went to the history only
    acked: bool  # the `ack` given to finish was acknowledged by the same script


class MessageAck(msgspec.Struct, frozen=True):
    """A broker message to acknowledge in the script that records the attempt: remove
    `message_id` from the set of fetched messages and its body from `messages`, and mark the
    consumer alive in `heartbeats`. The worker builds it (worker/broker.py); storage only hands
    the names to the script."""

    fetched: str  # set: the consumer's fetched, unacknowledged message ids
    messages: str  # hash: message id -> message body
    message_id: str
    heartbeats: str  # zset: consumer id -> last seen (ms)
    consumer_id: str


class FinishCall(msgspec.Struct, frozen=True):
    """One attempt to record (the arguments of `TaskStore.finish`), for `finish_many`."""

    task: Task
    attempt: Attempt
    decision: Decision
    result: AttemptResult
    now: int
    ack: MessageAck | None = None


class Unclaimed(msgspec.Struct, frozen=True):
    undone: bool  # False: the task was no longer this claim's (taken over, cancelled, gone)
    acked: bool  # the `ack` given to unclaim was acknowledged by the same script


class Change(StrEnum):
    """The outcome of a cancel or a manual retry."""

    DONE = "done"
    MISSING = "missing"
    REFUSED = "refused"  # the task's status does not allow it


@dataclass(frozen=True, slots=True)
class ChangeResult:
    change: Change
    status: TaskStatus | None = None  # the status that refused


@dataclass(frozen=True, slots=True)
class WorkerBeat:
    """A worker process's last Dramatiq heartbeat (its broker id, epoch ms)."""

    id: str
    at: int


@dataclass(frozen=True, slots=True)
class MinuteCounts:
    """What finished in one minute (lua/finish.lua counts each attempt once, in one of the three)."""

    completed: int
    failed: int
    retried: int


class TaskStore(Protocol):
    """The worker's store: claim -> finish (or unclaim), and the reconciler's sweeps. Every method
    is one atomic script (or a pipeline of them) and safe to repeat after a lost reply."""

    def close(self) -> None: ...

    def claim(self, task_id: str, token: int, now: int, lease_until: int) -> Claim | Skip: ...

    def finish(
        self,
        task: Task,
        attempt: Attempt,
        decision: Decision,
        result: AttemptResult,
        *,
        now: int,
        retention_ms: int,
        ack: MessageAck | None = None,
    ) -> Finished: ...

    def finish_many(self, calls: list[FinishCall], *, retention_ms: int) -> list[Finished]: ...

    def unclaim(self, task: Task, now: int, ack: MessageAck | None = None) -> Unclaimed: ...

    def heartbeat(self, broker_id: str, now: int, dead_after_ms: int, *, judge: bool) -> int: ...

    def promote_due(self, now: int, limit: int = 500) -> int: ...

    def reclaim_expired(self, now: int, retention_ms: int, limit: int = 500) -> int: ...

    def renew_leases(self, lease_until: int, owned: list[tuple[str, int]]) -> int: ...

    def wake_destinations(self, now: int) -> tuple[int, int]: ...

    def sweep(self, now: int, limit: int = 500) -> int: ...

    def redispatch_stranded(
        self, status: TaskStatus, offset: int, now: int, min_age_ms: int, limit: int = 500
    ) -> tuple[int, int]: ...


class AsyncTaskStore(Protocol):
    """The API's store: submit, read, list, cancel, retry, delete, and the overview's counts.
    Typed methods only: no caller reaches its client or its keys (the sessions, rate limits,
    inbox and mailbox have their own stores, built beside it by api/app.py)."""

    async def ping(self) -> bool: ...

    async def probe_writes(self) -> None: ...

    async def worker_beats(self, limit: int) -> list[WorkerBeat]: ...

    async def count_workers_since(self, since_ms: int) -> int: ...

    async def minute_counts(self, minutes: list[int]) -> list[MinuteCounts]: ...

    async def create(self, new: NewTask) -> tuple[bool, str]: ...

    async def create_many(self, news: list[NewTask]) -> list[tuple[bool, str] | Exception]: ...

    async def get_many(self, task_ids: list[str]) -> list[Task | None]: ...

    async def get(self, task_id: str) -> Task | None: ...

    async def destinations(self, now: int, limit: int) -> DestinationReport: ...

    async def cancel(self, task_id: str, now: int, retention_ms: int) -> ChangeResult: ...

    async def retry(self, task_id: str, now: int) -> ChangeResult: ...

    async def delete(self, task_id: str) -> bool: ...

    async def page(self, query: TaskQuery) -> Page: ...

    async def stats(self, types: list[str], queues: list[str]) -> dict[str, Any]: ...
