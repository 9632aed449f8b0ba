"""The task model.

How a task moves between statuses (each move is one storage script; tests/test_state_machine.py
runs every script from every status on a real Redis and checks this):

    pending    -> processing (claim), cancelled (cancel)
    scheduled  -> pending (promote, when due), cancelled
    processing -> completed, retrying, failed (finish); retrying or failed (reclaim: lease expired);
                  back to pending or retrying (unclaim: the attempt never started)
    retrying   -> processing (claim), cancelled
    (a claim of a task whose destination cannot take it parks it instead: its status stays)
    failed, cancelled -> pending (manual retry)
    completed: final
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec

from queue_system.domain.destinations import Waiting
from queue_system.domain.policy import RetryPolicy


class TaskStatus(StrEnum):
    PENDING = "pending"
    SCHEDULED = "scheduled"
    PROCESSING = "processing"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Outcome(StrEnum):
    """How one attempt ended."""

    SUCCESS = "success"
    TRANSIENT = "transient"  # worth retrying: timeouts, connection errors, 408/425/429/5xx
    PERMANENT = "permanent"  # retrying cannot help: other 4xx, bad payload
    LOST = "lost"  # the worker died or stalled: its lease expired


# The types made once or more per attempt (AttemptResult, Attempt, Task) are frozen msgspec
# Structs: built in C, several times cheaper than a frozen dataclass, whose __init__ calls
# object.__setattr__ once per field (a Task has 21); immutable and compared by value alike.


class AttemptResult(msgspec.Struct, frozen=True):
    """What a handler reports for one attempt."""

    outcome: Outcome
    result: Any = None
    error: str | None = None  # what happened, as a person says it (docs/concepts/attempts-and-errors.md)
    status_code: int | None = None
    response_body: str | None = None
    retry_after_ms: int | None = None  # the receiver asked us to wait at least this long
    # False: the attempt says nothing about its destination (the request was refused on our side
    # before it went out, e.g. unsendable: domain/sendable.py), so the destination's breaker
    # does not count it.
    about_destination: bool = True
    # True: the host could not be reached (DNS failure, connection refused, connect timeout, TLS
    # failure): a host-level fact, counted by the host's breaker, not the endpoint's
    # (domain/destinations.py).
    connect_failed: bool = False
    # The library's own account (exception types and messages), kept in the attempt's history.
    detail: str | None = None


class Attempt(msgspec.Struct, frozen=True):
    """One recorded attempt, as kept in the capped history."""

    n: int
    started_at: int  # epoch ms
    duration_ms: int
    outcome: Outcome
    status_code: int | None = None
    error: str | None = None
    response_body: str | None = None
    trigger: str = "auto"  # "auto" | "manual" | "recovered"
    detail: str | None = None  # the raw account behind `error` (AttemptResult.detail)


class Task(msgspec.Struct, frozen=True):
    id: str
    type: str
    payload: Any
    status: TaskStatus
    queue: str
    attempts: int
    created_at: int  # epoch ms
    updated_at: int
    retry: RetryPolicy | None = None  # the task's own policy, resolved at submit; None = the kind's
    timeout_ms: int | None = None
    token: int = 0
    result: Any = None
    last_error: str | None = None
    next_attempt_at: int | None = None
    completed_at: int | None = None
    retried_at: int | None = None  # a manual retry restarts the retry window and count here
    attempt_base: int = 0  # attempts made before the last manual retry
    trigger: str = "auto"  # what started the current attempt: "auto" | "manual"
    history: list[Attempt] = msgspec.field(default_factory=list)
    dest: str | None = None  # a webhook's destination host, `scheme://host:port`
    # Its endpoint (domain/destinations.py); None for a task stored before endpoints: its host.
    endpoint: str | None = None
    waiting: Waiting | None = None  # parked: why it waits for its destination
    schedule_id: str | None = None  # the schedule that created it (domain/schedules.py)

    @property
    def window_start(self) -> int:
        return self.retried_at or self.created_at


# Attempt history kept per task; older attempts are trimmed.
MAX_HISTORY = 50
# A task whose worker is lost (lease expired: SIGKILL, OOM, host gone) this many times in a row
# fails rather than being dispatched again: it is likely what kills its workers.
MAX_LOST_IN_A_ROW = 5
# Bytes of a response body kept in an attempt record.
MAX_RESPONSE_BODY = 1024


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """Which tasks to list, newest first: the filters are ANDed; `cursor` continues a page."""

    statuses: tuple[str, ...] = ()
    type: str | None = None
    queue: str | None = None
    created_after: int | None = None  # epoch ms, inclusive
    created_before: int | None = None  # epoch ms, inclusive
    schedule_id: str | None = None  # only the tasks this schedule created
    cursor: tuple[int, str] | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class Page:
    tasks: list[Task]
    next_cursor: tuple[int, str] | None
