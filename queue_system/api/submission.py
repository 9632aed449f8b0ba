"""Creating tasks: from the request schema to the service's `Submission` (shorthand, options,
durations), and the one response every create route answers with."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Response

from queue_system.api import metrics
from queue_system.api.schemas import WEBHOOK_FIELDS, CreatedTask, SubmitTask, created_out, task_location
from queue_system.config.settings import parse_duration_ms
from queue_system.domain.retry import RetryOverride
from queue_system.errors import InvalidInput
from queue_system.service.tasks import Submission, TaskService

_DURATIONS = ("min_delay", "max_delay", "interval", "max_age")


async def submit(
    service: TaskService, data: SubmitTask, idempotency_key: str | None = None
) -> Response[CreatedTask]:
    """201 with the new task, or 200 with the existing one (same id, same request)."""
    task, created = await service.submit(to_submission(data, idempotency_key))
    if created:
        metrics.submitted(task.type)
    return Response(
        created_out(task, created=created),
        status_code=201 if created else 200,
        headers={"Location": task_location(task.id)},
    )


def _ms(value: str | None, field: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration_ms(value)
    except ValueError as exc:
        raise InvalidInput(str(exc), field=field) from None


def _retry_override(data: SubmitTask) -> RetryOverride | None:
    spec = data.retry
    requested: dict[str, str | int] = msgspec.to_builtins(spec) if spec is not None else {}
    max_retries = spec.max_retries if spec is not None and spec.max_retries is not None else data.max_retries
    if max_retries is not None:
        requested["max_retries"] = max_retries
    if not requested:
        return None
    min_delay, max_delay, interval, max_age = (_ms(getattr(spec, n, None), f"retry.{n}") for n in _DURATIONS)
    strategy = spec.strategy if spec is not None else None
    if strategy == "fixed" and (min_delay is not None or max_delay is not None):
        raise InvalidInput("min_delay/max_delay belong to the exponential strategy", field="retry")
    if strategy == "exponential" and (interval is not None or max_age is not None):
        raise InvalidInput("interval/max_age belong to the fixed strategy", field="retry")
    return RetryOverride(
        requested=requested,
        strategy=strategy,
        max_retries=max_retries,
        interval_ms=interval,
        max_age_ms=max_age,
        min_delay_ms=min_delay,
        max_delay_ms=max_delay,
    )


def _run_at_ms(data: SubmitTask) -> int | None:
    if data.run_at is None:
        return None
    if data.run_at.tzinfo is None:
        raise InvalidInput("needs a time zone (RFC 3339, e.g. 2030-01-01T12:00:00Z)", field="run_at")
    return int(data.run_at.timestamp() * 1000)


def _type_and_payload(data: SubmitTask) -> tuple[str, Any, str]:
    shorthand = {name: value for name in WEBHOOK_FIELDS if (value := getattr(data, name)) is not None}
    if data.type is None and data.payload is None:
        if "url" not in shorthand:
            raise InvalidInput("required (or give `type` and `payload`)", field="url")
        return "webhook", shorthand, ""
    if shorthand:
        first = next(iter(shorthand))
        raise InvalidInput("put webhook fields inside `payload` when `type` is given", field=first)
    if data.type is None:
        raise InvalidInput("required when `payload` is given", field="type")
    return data.type, data.payload, "payload"


def to_submission(data: SubmitTask, idempotency_key: str | None = None) -> Submission:
    type_, payload, prefix = _type_and_payload(data)
    if idempotency_key is not None and data.id is not None and idempotency_key != data.id:
        raise InvalidInput("differs from the body's `id`", field="Idempotency-Key")
    return Submission(
        type=type_,
        payload=payload,
        id=data.id if data.id is not None else idempotency_key,
        queue=data.queue,
        retry=_retry_override(data),
        timeout_ms=_ms(data.timeout, "timeout"),
        delay_ms=_ms(data.delay, "delay"),
        run_at=_run_at_ms(data),
        payload_prefix=prefix,
    )
