"""Retry policies and the decision taken after each attempt.

Two shapes: a fixed interval until a deadline counted from creation (webhooks: every 10 s for 24 h),
and exponential backoff with full jitter up to `max_retries` (everything else). Dramatiq's own
backoff always adds jitter and cannot give a fixed interval, so the decision lives here and the
worker schedules the next attempt itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from queue_system.domain.models import AttemptResult, Outcome, TaskStatus


@dataclass(frozen=True, slots=True)
class FixedPolicy:
    interval_ms: int
    max_age_ms: int
    max_retries: int | None = None  # None: only the deadline bounds the retries

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "strategy": "fixed",
            "interval_ms": self.interval_ms,
            "max_age_ms": self.max_age_ms,
        }
        if self.max_retries is not None:
            data["max_retries"] = self.max_retries
        return data


@dataclass(frozen=True, slots=True)
class ExponentialPolicy:
    max_retries: int
    min_delay_ms: int
    max_delay_ms: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": "exponential",
            "max_retries": self.max_retries,
            "min_delay_ms": self.min_delay_ms,
            "max_delay_ms": self.max_delay_ms,
        }


RetryPolicy = FixedPolicy | ExponentialPolicy


def policy_from_dict(data: dict[str, Any]) -> RetryPolicy:
    if data.get("strategy") == "fixed":
        retries = data.get("max_retries")
        return FixedPolicy(
            interval_ms=int(data["interval_ms"]),
            max_age_ms=int(data["max_age_ms"]),
            max_retries=None if retries is None else int(retries),
        )
    return ExponentialPolicy(
        max_retries=int(data["max_retries"]),
        min_delay_ms=int(data["min_delay_ms"]),
        max_delay_ms=int(data["max_delay_ms"]),
    )


def resolve_policy(
    override: dict[str, Any] | None,
    kind_default: RetryPolicy,
    fixed: FixedPolicy,
    exponential: ExponentialPolicy,
) -> RetryPolicy:
    """A task's policy: its kind's default, with the fields the task overrides (a partial dict:
    `strategy` and/or `max_retries`, `interval_ms`, `max_age_ms`, `min_delay_ms`, `max_delay_ms`).
    Switching strategy starts from the server's default for that strategy."""
    if not override:
        return kind_default
    strategy = override.get("strategy") or kind_default.as_dict()["strategy"]
    if strategy == kind_default.as_dict()["strategy"]:
        base = kind_default
    else:
        base = fixed if strategy == "fixed" else exponential
    return policy_from_dict({**base.as_dict(), **override, "strategy": strategy})


@dataclass(frozen=True, slots=True)
class Decision:
    status: TaskStatus
    next_attempt_at: int | None = None  # epoch ms, set when status is RETRYING
    reason: str | None = None


def decide(
    policy: RetryPolicy,
    result: AttemptResult,
    *,
    attempts: int,
    created_at: int,
    now: int,
    rng: random.Random | None = None,
) -> Decision:
    """What happens after attempt number `attempts` (1-based, counted from the stored record)."""
    if result.outcome is Outcome.SUCCESS:
        return Decision(TaskStatus.COMPLETED)
    if result.outcome is Outcome.PERMANENT:
        return Decision(TaskStatus.FAILED, reason="permanent failure")
    wait = _delay_ms(policy, attempts, rng or _rng)
    if wait is None:
        return Decision(TaskStatus.FAILED, reason=f"gave up after {attempts} attempts")
    wait = max(wait, result.retry_after_ms or 0)
    next_at = now + wait
    if isinstance(policy, FixedPolicy) and next_at > created_at + policy.max_age_ms:
        return Decision(TaskStatus.FAILED, reason="retry window exhausted")
    return Decision(TaskStatus.RETRYING, next_attempt_at=next_at)


def _delay_ms(policy: RetryPolicy, attempts: int, rng: random.Random) -> int | None:
    if policy.max_retries is not None and attempts > policy.max_retries:
        return None
    if isinstance(policy, FixedPolicy):
        return policy.interval_ms
    # Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2^(n-1))], never below
    # the minimum, so a burst of failures spreads out instead of retrying in lockstep.
    ceiling = min(policy.max_delay_ms, policy.min_delay_ms * 2 ** (attempts - 1))
    return max(policy.min_delay_ms, int(rng.uniform(0, ceiling)))


_rng = random.Random()
