"""API schemas: what the HTTP API accepts and returns, separate from the domain model."""

from __future__ import annotations

import base64
import binascii
import functools
import time
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from queue_system.domain.destinations import Waiting
from queue_system.domain.models import Attempt, Task
from queue_system.domain.redaction import redact_url, shown_task
from queue_system.errors import InvalidInput

# How many retries a client may ask for.
RetryCount = Annotated[int, msgspec.Meta(ge=0, le=100)]
# Where a task lives: the `Location` of a create or a conflict.
TASKS_PATH = "/api/v1/tasks"


class RetrySpec(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Overrides the kind's retry policy; unset fields keep the server's defaults.
    `{"strategy": "exponential", "max_retries": 5, "min_delay": "1s", "max_delay": "1h"}` or
    `{"strategy": "fixed", "interval": "10s", "max_age": "24h"}`. Bounded by the server's: every
    delay at least TASK_MIN_RETRY_DELAY (1s), `max_age`/`max_delay` at most WORKER_RETRY_MAX_AGE
    (24h); else 422 naming the field."""

    strategy: Literal["exponential", "fixed"] | None = None
    max_retries: RetryCount | None = None
    min_delay: str | None = None
    max_delay: str | None = None
    interval: str | None = None
    max_age: str | None = None


class SubmitTask(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A job. Either `{"type": ..., "payload": ...}`, or a webhook written out directly:
    `{"url": ..., "method": ..., "headers": ..., "body": ...}` (then `type` is `webhook`)."""

    type: str | None = None
    payload: Any = None
    id: str | None = msgspec.field(default=None)
    queue: str = "default"
    max_retries: RetryCount | None = None
    retry: RetrySpec | None = None
    delay: str | None = None
    run_at: datetime | None = None
    timeout: str | None = None
    # The webhook shorthand:
    url: str | None = None
    method: str | None = None
    headers: dict[str, str] | None = None
    body: str | dict[str, Any] | list[Any] | int | float | bool | None = None
    signing_secret: str | None = None  # write-only: signs this task's deliveries, never shown
    endpoint: str | None = None  # names the receiver for its circuit breaker (domain/destinations.py)


WEBHOOK_FIELDS = ("url", "method", "headers", "body", "signing_secret", "endpoint")


class AttemptOut(msgspec.Struct, omit_defaults=True):
    n: int
    started_at: str
    duration_ms: int
    outcome: str
    trigger: str = "auto"
    status_code: int | None = None
    error: str | None = None  # what happened, in words (docs/concepts/attempts-and-errors.md)
    response_body: str | None = None
    detail: str | None = None  # the HTTP or SMTP library's own account of a failure, redacted


class WaitingOut(msgspec.Struct):
    """Why a task waits without running, and for which `level`: its `endpoint` (its breaker is
    open, or its probe under way: `open`; it has WEBHOOK_MAX_INFLIGHT_PER_ENDPOINT requests in
    flight: `busy`) or its host, `destination` (down at the connection level: `open`; at
    WEBHOOK_MAX_INFLIGHT_PER_HOST: `busy`). Waiting counts no attempt and does not extend the retry
    window."""

    destination: str  # the host, scheme://host:port
    reason: Literal["open", "busy"]
    since: str
    next_probe_at: str | None  # when an open host or endpoint is tried again
    level: Literal["host", "endpoint"] = "host"
    endpoint: str | None = None


class TaskOut(msgspec.Struct):
    id: str
    type: str
    status: str
    queue: str
    payload: Any
    attempts: int
    created_at: str
    updated_at: str
    next_attempt_at: str | None = None
    completed_at: str | None = None
    result: Any = None
    last_error: str | None = None
    retry: dict[str, Any] | None = None  # the task's own retry options, as the client wrote them
    attempt_history: list[AttemptOut] | None = None
    waiting: WaitingOut | None = None  # set while the task is parked, waiting for its destination
    schedule_id: str | None = None  # the schedule that created it


class CreatedTask(TaskOut):
    """A create's answer: the task, plus `task_id` and `message` as the old system answered."""

    task_id: str = ""
    message: str = ""


class TaskPage(msgspec.Struct):
    items: list[TaskOut]
    next_cursor: str | None
    limit: int


class QueueDepth(msgspec.Struct):
    ready: int
    dead: int


class DestinationSummary(msgspec.Struct):
    known: int  # webhook hosts seen in the last 7 days
    open: int  # hosts whose circuit breaker is open or half-open
    parked: int  # tasks waiting for their host or endpoint
    endpoints_known: int = 0  # endpoints with requests in flight, tasks parked or a breaker's state
    endpoints_open: int = 0  # endpoints whose circuit breaker is open or half-open


class Stats(msgspec.Struct):
    by_status: dict[str, int]
    by_type: dict[str, int]
    queues: dict[str, QueueDepth]
    delayed: int  # scheduled tasks and retries waiting for their time
    oldest_pending_age_ms: int | None
    destinations: DestinationSummary | None = None


def rfc3339(ms: int | None) -> str | None:
    """Epoch ms -> `2026-11-23T09:48:27.079Z` (UTC, millisecond precision)."""
    if ms is None:
        return None
    seconds, millis = divmod(ms, 1000)
    return f"{_second(seconds)}.{millis:03d}Z"


@functools.lru_cache(maxsize=256)
def _second(seconds: int) -> str:
    # Timestamps of a busy API cluster on a few seconds: formatting each second once is 3x faster.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def attempt_out(a: Attempt) -> AttemptOut:
    return AttemptOut(
        n=a.n,
        started_at=rfc3339(a.started_at) or "",
        duration_ms=a.duration_ms,
        outcome=a.outcome.value,
        trigger=a.trigger,
        status_code=a.status_code,
        error=a.error,
        response_body=a.response_body,
        detail=a.detail,
    )


def task_location(task_id: str) -> str:
    return f"{TASKS_PATH}/{task_id}"


def task_out(task: Task, *, with_history: bool) -> TaskOut:
    task = shown_task(task)  # every reader sees secrets redacted (domain/redaction.py)
    return TaskOut(
        **_task_fields(task), attempt_history=[attempt_out(a) for a in task.history] if with_history else None
    )


def waiting_out(w: Waiting | None) -> WaitingOut | None:
    if w is None:
        return None
    return WaitingOut(
        destination=w.destination,
        reason=w.reason.value,
        since=rfc3339(w.since) or "",
        next_probe_at=rfc3339(w.next_probe_at),
        level=w.level.value,
        endpoint=redact_url(w.endpoint) if w.endpoint else None,
    )


def created_out(task: Task, *, created: bool) -> CreatedTask:
    """The answer of every create (and of each created item of a batch, ~1,000 a request): built
    directly, not through `_task_fields`' dict (a third of this function's cost)."""
    task = shown_task(task)
    created_at = rfc3339(task.created_at) or ""
    updated = created_at if task.updated_at == task.created_at else rfc3339(task.updated_at) or ""
    return CreatedTask(
        task.id,
        task.type,
        task.status.value,
        task.queue,
        task.payload,
        task.attempts,
        created_at,
        updated,
        next_attempt_at=rfc3339(task.next_attempt_at),
        completed_at=rfc3339(task.completed_at),
        result=task.result,
        last_error=task.last_error,
        retry=task.retry.requested if task.retry is not None else None,
        waiting=waiting_out(task.waiting),
        schedule_id=task.schedule_id,
        task_id=task.id,
        message="task accepted" if created else "task already exists (same id and request)",
    )


def _task_fields(task: Task) -> dict[str, Any]:
    return dict(
        id=task.id,
        type=task.type,
        status=task.status.value,
        queue=task.queue,
        payload=task.payload,
        attempts=task.attempts,
        created_at=rfc3339(task.created_at) or "",
        updated_at=rfc3339(task.updated_at) or "",
        next_attempt_at=rfc3339(task.next_attempt_at),
        completed_at=rfc3339(task.completed_at),
        result=task.result,
        last_error=task.last_error,
        retry=task.retry.requested if task.retry is not None else None,
        waiting=waiting_out(task.waiting),
        schedule_id=task.schedule_id,
    )


def encode_cursor(cursor: tuple[int, str] | None) -> str | None:
    if cursor is None:
        return None
    return base64.urlsafe_b64encode(f"{cursor[0]}:{cursor[1]}".encode()).decode().rstrip("=")


def decode_cursor(text: str | None) -> tuple[int, str] | None:
    if not text:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        score, task_id = raw.split(":", 1)
        return int(score), task_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("not a cursor this API returned", field="cursor", status_code=400) from None
