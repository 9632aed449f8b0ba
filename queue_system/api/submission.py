"""From the request schema to the service's `Submission`: shorthand, options, durations."""

from __future__ import annotations

from typing import Any

from queue_system.api.schemas import WEBHOOK_FIELDS, RetrySpec, SubmitTask
from queue_system.errors import InvalidInput
from queue_system.service.tasks import Submission
from queue_system.settings import parse_duration_ms


def _ms(value: str | None, field: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration_ms(value)
    except ValueError as exc:
        raise InvalidInput(f"{field}: {exc}", field=field) from None


def _retry_override(data: SubmitTask) -> dict[str, Any] | None:
    spec = data.retry or RetrySpec()
    override: dict[str, Any] = {}
    if spec.strategy:
        override["strategy"] = spec.strategy
    max_retries = spec.max_retries if spec.max_retries is not None else data.max_retries
    if max_retries is not None:
        override["max_retries"] = max_retries
    for name in ("min_delay", "max_delay", "interval", "max_age"):
        ms = _ms(getattr(spec, name), f"retry.{name}")
        if ms is not None:
            override[f"{name}_ms"] = ms
    strategy = spec.strategy
    if strategy == "fixed" and ({"min_delay_ms", "max_delay_ms"} & override.keys()):
        raise InvalidInput("retry: min_delay/max_delay belong to the exponential strategy", field="retry")
    if strategy == "exponential" and ({"interval_ms", "max_age_ms"} & override.keys()):
        raise InvalidInput("retry: interval/max_age belong to the fixed strategy", field="retry")
    return override or None


def _run_at_ms(data: SubmitTask) -> int | None:
    if data.run_at is None:
        return None
    if data.run_at.tzinfo is None:
        raise InvalidInput("run_at: needs a time zone (RFC 3339, e.g. 2030-01-01T12:00:00Z)", field="run_at")
    return int(data.run_at.timestamp() * 1000)


def _type_and_payload(data: SubmitTask) -> tuple[str, Any, str]:
    shorthand = {name: getattr(data, name) for name in WEBHOOK_FIELDS if getattr(data, name) is not None}
    if data.type is None and data.payload is None:
        if "url" not in shorthand:
            raise InvalidInput("url: required (or give `type` and `payload`)", field="url")
        return "webhook", shorthand, ""
    if shorthand:
        first = next(iter(shorthand))
        raise InvalidInput(f"{first}: put webhook fields inside `payload` when `type` is given", field=first)
    if data.type is None:
        raise InvalidInput("type: required when `payload` is given", field="type")
    return data.type, data.payload, "payload"


def to_submission(data: SubmitTask, idempotency_key: str | None = None) -> Submission:
    type_, payload, prefix = _type_and_payload(data)
    if idempotency_key is not None and data.id is not None and idempotency_key != data.id:
        raise InvalidInput("Idempotency-Key: differs from the body's `id`", field="Idempotency-Key")
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
