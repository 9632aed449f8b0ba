"""Bulk actions by filter, as resumable background operations (docs/bulk.md).

An operation walks the tasks a filter matches, oldest first, a bounded step at a time (one script
each: storage/lua/operation_step.lua), and applies one action to each: `retry` (failed or cancelled
tasks run again), `cancel` (waiting tasks will not run), `delete`. A task whose status no longer
allows the action is `skipped`; a task gone between the index and its record is `failed`.

It acts on the tasks created up to the moment it was started, so tasks created later (the retried
ones' own failures included) never enter it, and each matching task is acted on once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class BulkAction(StrEnum):
    RETRY = "retry"
    CANCEL = "cancel"
    DELETE = "delete"


class OperationState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # it could not go on: its step raised an error (kept in `error`)
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """The list's filters (ANDed); `all`: the explicit "every task" (no other field set)."""

    statuses: tuple[str, ...] = ()
    type: str | None = None
    queue: str | None = None
    destination: str | None = None  # a host, `scheme://host:port`
    endpoint: str | None = None  # `scheme://host:port/path` or `scheme://host:port#key`
    schedule_id: str | None = None
    created_after: int | None = None  # epoch ms, inclusive
    created_before: int | None = None  # epoch ms, inclusive
    all: bool = False

    @property
    def empty(self) -> bool:
        return self == TaskFilter()


@dataclass(frozen=True, slots=True)
class Operation:
    id: str
    action: BulkAction
    filter: dict[str, object]  # as the client wrote it (normalised), for reading back
    state: OperationState
    rate: int  # tasks per second at most
    created_at: int
    updated_at: int
    finished_at: int | None = None
    total: int = 0  # index entries in the filter's range when it started (an upper bound)
    examined: int = 0  # index entries walked so far (progress = examined / total)
    matched: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    error: str | None = None  # why it failed

    @property
    def progress(self) -> float:
        if self.state is OperationState.DONE:
            return 1.0
        return min(1.0, self.examined / self.total) if self.total else 0.0


@dataclass(frozen=True, slots=True)
class Step:
    """What one step did: `ran` False with `reason` busy (another runner holds the lease), wait
    (no token yet; `wait_ms`), over (not running any more) or gone."""

    ran: bool
    reason: str = ""
    acted: int = 0
    examined: int = 0
    finished: bool = False
    wait_ms: int = 0
    action: str = ""
