"""Retry policies as values: a tagged union, resolved once at submit and stored as typed JSON.

A task's own options are bounded by the server's (`PolicyBounds`): no retry sooner than
TASK_MIN_RETRY_DELAY, no window or wait longer than WORKER_RETRY_MAX_AGE. The submit refuses what
is out of bounds (`override_problems`); the worker clamps a stored policy again (`bounded`), so a
task stored before a bound existed cannot hammer its receiver either.

Lives apart from `retry.py` (which decides with them) so that `models.Task` can name the type
without an import cycle; `retry.py` re-exports everything here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

# The retry options as the client wrote them (`{"interval": "2s"}`), kept to show them back.
Requested = dict[str, str | int]


class FixedPolicy(msgspec.Struct, frozen=True, omit_defaults=True, tag="fixed", tag_field="strategy"):
    """Every `interval_ms` until `max_age_ms` after creation (webhooks: every 10 s for 24 h)."""

    interval_ms: int
    max_age_ms: int
    max_retries: int | None = None  # None: only the deadline bounds the retries
    requested: Requested | None = None  # set when the task overrides its kind's default


class ExponentialPolicy(
    msgspec.Struct, frozen=True, omit_defaults=True, tag="exponential", tag_field="strategy"
):
    """Up to `max_retries` retries, waiting between `min_delay_ms` and `max_delay_ms` (full jitter)."""

    max_retries: int
    min_delay_ms: int
    max_delay_ms: int
    requested: Requested | None = None


RetryPolicy = FixedPolicy | ExponentialPolicy
Strategy = Literal["fixed", "exponential"]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(RetryPolicy)


def encode_policy(policy: RetryPolicy) -> str:
    return _encoder.encode(policy).decode()


def decode_policy(text: str) -> RetryPolicy:
    policy: RetryPolicy = _decoder.decode(text)
    return policy


@dataclass(frozen=True, slots=True)
class RetryOverride:
    """A task's own retry options, durations in ms; None keeps the kind's default for that field."""

    requested: Requested  # as written, for display
    strategy: Strategy | None = None
    max_retries: int | None = None
    interval_ms: int | None = None
    max_age_ms: int | None = None
    min_delay_ms: int | None = None
    max_delay_ms: int | None = None


def strategy_of(policy: RetryPolicy) -> Strategy:
    return "fixed" if isinstance(policy, FixedPolicy) else "exponential"


def resolve_policy(
    override: RetryOverride | None,
    kind_default: RetryPolicy,
    fixed: FixedPolicy,
    exponential: ExponentialPolicy,
) -> RetryPolicy:
    """A task's policy: its kind's default with the fields the task overrides. Switching strategy
    starts from the server's default for that strategy; options of the other strategy are ignored."""
    if override is None:
        return kind_default
    strategy = override.strategy or strategy_of(kind_default)
    base: RetryPolicy
    if strategy == strategy_of(kind_default):
        base = kind_default
    else:
        base = fixed if strategy == "fixed" else exponential
    changes = {
        name: value
        for name in base.__struct_fields__
        if name != "requested" and (value := getattr(override, name)) is not None
    }
    return msgspec.structs.replace(base, **changes, requested=override.requested)


@dataclass(frozen=True, slots=True)
class PolicyBounds:
    """What a task's own policy may ask for: the server's TASK_MIN_RETRY_DELAY and WORKER_RETRY_MAX_AGE
    (the number of retries is bounded by the API's schema, 0-100)."""

    min_delay_ms: int
    max_age_ms: int


Problem = tuple[str, str]  # (field, message)


def override_problems(override: RetryOverride, resolved: RetryPolicy, bounds: PolicyBounds) -> list[Problem]:
    """Why a task's retry options are out of the server's bounds (fields as `retry.interval`)."""
    problems: list[Problem] = []
    floor, ceiling = bounds.min_delay_ms, bounds.max_age_ms
    for name in ("interval", "min_delay", "max_delay"):
        value = getattr(override, f"{name}_ms")
        if value is not None and value < floor:
            problems.append((f"retry.{name}", f"at least {_ms_text(floor)} (TASK_MIN_RETRY_DELAY)"))
    for name in ("max_age", "max_delay"):
        value = getattr(override, f"{name}_ms")
        if value is not None and value > ceiling:
            problems.append((f"retry.{name}", f"at most {_ms_text(ceiling)} (WORKER_RETRY_MAX_AGE)"))
    if isinstance(resolved, ExponentialPolicy) and resolved.min_delay_ms > resolved.max_delay_ms:
        name = "min_delay" if override.min_delay_ms is not None else "max_delay"
        problems.append(
            (
                f"retry.{name}",
                f"min_delay {_ms_text(resolved.min_delay_ms)} exceeds max_delay "
                f"{_ms_text(resolved.max_delay_ms)}",
            )
        )
    return problems


def bounded(policy: RetryPolicy, bounds: PolicyBounds) -> RetryPolicy:
    """`policy` clamped into the bounds (the same object when it is inside them)."""
    floor, ceiling = bounds.min_delay_ms, bounds.max_age_ms
    if isinstance(policy, FixedPolicy):
        if floor <= policy.interval_ms and policy.max_age_ms <= ceiling:
            return policy
        return msgspec.structs.replace(
            policy, interval_ms=max(policy.interval_ms, floor), max_age_ms=min(policy.max_age_ms, ceiling)
        )
    if floor <= policy.min_delay_ms and policy.max_delay_ms <= ceiling:
        return policy
    low = max(policy.min_delay_ms, floor)
    return msgspec.structs.replace(
        policy, min_delay_ms=low, max_delay_ms=max(low, min(policy.max_delay_ms, ceiling))
    )


def _ms_text(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
