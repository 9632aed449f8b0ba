"""Retry policies and the decision taken after each attempt.

Two shapes: a fixed interval until a deadline counted from creation (webhooks: every 10 s for 24 h),
and exponential backoff with full jitter up to `max_retries` (everything else). Dramatiq's own
backoff always adds jitter and cannot give a fixed interval, so the decision lives here and the
worker schedules the next attempt itself. The policies are typed values (`domain/policy.py`): a
task's own is resolved at submit and stored on the task; a task without one uses its kind's.
"""

from __future__ import annotations

import random

import msgspec

from queue_system.domain.models import AttemptResult, Outcome, TaskStatus
from queue_system.domain.policy import (
    ExponentialPolicy,
    FixedPolicy,
    PolicyBounds,
    RetryOverride,
    RetryPolicy,
    bounded,
    decode_policy,
    encode_policy,
    override_problems,
    resolve_policy,
)
from queue_system.domain.words import plural

__all__ = [
    "Decision",
    "ExponentialPolicy",
    "FixedPolicy",
    "PolicyBounds",
    "RetryOverride",
    "RetryPolicy",
    "bounded",
    "decide",
    "decode_policy",
    "encode_policy",
    "override_problems",
    "resolve_policy",
]


class Decision(msgspec.Struct, frozen=True):
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
        return Decision(TaskStatus.FAILED, reason=f"gave up after {plural(attempts, 'attempt')}")
    # A 429 or 503 without Retry-After waits the task's own schedule; with one, at least that long,
    # up to the task's longest wait: its window (fixed: beyond it the task fails now, below) or its
    # max_delay (exponential), never for whatever a receiver wrote.
    retry_after = result.retry_after_ms or 0
    if isinstance(policy, ExponentialPolicy):
        retry_after = min(retry_after, policy.max_delay_ms)
    wait = max(wait, retry_after)
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
