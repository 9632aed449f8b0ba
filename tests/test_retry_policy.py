"""Unit tests of the retry decision (pure logic)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from queue_system.domain.models import AttemptResult, Outcome, TaskStatus
from queue_system.domain.retry import (
    ExponentialPolicy,
    FixedPolicy,
    PolicyBounds,
    RetryOverride,
    bounded,
    decide,
    decode_policy,
    encode_policy,
    resolve_policy,
)

H = 3_600_000
FIXED = FixedPolicy(interval_ms=10_000, max_age_ms=24 * H)
EXPO = ExponentialPolicy(max_retries=3, min_delay_ms=1_000, max_delay_ms=60_000)
TRANSIENT = AttemptResult(Outcome.TRANSIENT, error="HTTP 503")


def test_success_completes() -> None:
    d = decide(FIXED, AttemptResult(Outcome.SUCCESS), attempts=1, created_at=0, now=5)
    assert d.status is TaskStatus.COMPLETED
    assert d.next_attempt_at is None


def test_permanent_fails_at_once() -> None:
    d = decide(FIXED, AttemptResult(Outcome.PERMANENT, status_code=404), attempts=1, created_at=0, now=5)
    assert d.status is TaskStatus.FAILED


def test_fixed_interval_retries_every_interval() -> None:
    d = decide(FIXED, TRANSIENT, attempts=7, created_at=0, now=1_000_000)
    assert d.status is TaskStatus.RETRYING
    assert d.next_attempt_at == 1_010_000


def test_fixed_gives_up_when_next_attempt_would_pass_max_age() -> None:
    created = 0
    just_inside = decide(FIXED, TRANSIENT, attempts=500, created_at=created, now=24 * H - 10_000)
    assert just_inside.status is TaskStatus.RETRYING
    outside = decide(FIXED, TRANSIENT, attempts=501, created_at=created, now=24 * H - 9_999)
    assert outside.status is TaskStatus.FAILED
    assert outside.reason == "retry window exhausted"


def test_retry_after_longer_than_interval_is_honoured() -> None:
    result = AttemptResult(Outcome.TRANSIENT, status_code=429, retry_after_ms=120_000)
    d = decide(FIXED, result, attempts=1, created_at=0, now=1_000)
    assert d.next_attempt_at == 121_000


def test_retry_after_shorter_than_interval_keeps_interval() -> None:
    result = AttemptResult(Outcome.TRANSIENT, status_code=429, retry_after_ms=1_000)
    d = decide(FIXED, result, attempts=1, created_at=0, now=0)
    assert d.next_attempt_at == 10_000


def test_retry_after_beyond_max_age_fails() -> None:
    result = AttemptResult(Outcome.TRANSIENT, status_code=503, retry_after_ms=25 * H)
    assert decide(FIXED, result, attempts=1, created_at=0, now=0).status is TaskStatus.FAILED


@pytest.mark.parametrize("attempts", [1, 2, 3])
def test_exponential_delay_within_full_jitter_bounds(attempts: int) -> None:
    rng = random.Random(1)
    ceiling = min(60_000, 1_000 * 2 ** (attempts - 1))
    for _ in range(200):
        d = decide(EXPO, TRANSIENT, attempts=attempts, created_at=0, now=0, rng=rng)
        assert d.status is TaskStatus.RETRYING
        assert d.next_attempt_at is not None
        assert 1_000 <= d.next_attempt_at <= max(1_000, ceiling)


def test_exponential_delay_is_capped() -> None:
    policy = ExponentialPolicy(max_retries=50, min_delay_ms=1_000, max_delay_ms=5_000)
    d = decide(policy, TRANSIENT, attempts=40, created_at=0, now=0, rng=random.Random(2))
    assert d.next_attempt_at is not None and d.next_attempt_at <= 5_000


def test_exponential_gives_up_after_max_retries() -> None:
    assert decide(EXPO, TRANSIENT, attempts=3, created_at=0, now=0).status is TaskStatus.RETRYING
    d = decide(EXPO, TRANSIENT, attempts=4, created_at=0, now=0)
    assert d.status is TaskStatus.FAILED
    assert d.reason == "gave up after 4 attempts"


def test_lost_attempt_is_retried_like_a_transient_one() -> None:
    d = decide(FIXED, AttemptResult(Outcome.LOST), attempts=1, created_at=0, now=0)
    assert d.status is TaskStatus.RETRYING


@pytest.mark.parametrize(
    "policy",
    [FIXED, EXPO, FixedPolicy(2_000, 24 * H, max_retries=3, requested={"interval": "2s", "max_retries": 3})],
)
def test_policy_round_trips_as_tagged_json(policy: FixedPolicy | ExponentialPolicy) -> None:
    assert decode_policy(encode_policy(policy)) == policy


def test_policy_json_is_tagged_and_omits_what_is_unset() -> None:
    assert encode_policy(EXPO) == (
        '{"strategy":"exponential","max_retries":3,"min_delay_ms":1000,"max_delay_ms":60000}'
    )
    assert encode_policy(FIXED) == '{"strategy":"fixed","interval_ms":10000,"max_age_ms":86400000}'


def test_fixed_policy_with_max_retries_stops_early() -> None:
    policy = FixedPolicy(interval_ms=1_000, max_age_ms=24 * H, max_retries=2)
    assert decide(policy, TRANSIENT, attempts=2, created_at=0, now=0).status is TaskStatus.RETRYING
    assert decide(policy, TRANSIENT, attempts=3, created_at=0, now=0).status is TaskStatus.FAILED


def test_resolve_policy_merges_overrides() -> None:
    assert resolve_policy(None, FIXED, FIXED, EXPO) == FIXED
    faster = RetryOverride({"interval": "2s"}, interval_ms=2_000)
    assert resolve_policy(faster, FIXED, FIXED, EXPO) == FixedPolicy(
        2_000, 24 * H, requested={"interval": "2s"}
    )
    more = RetryOverride({"max_retries": 5}, max_retries=5)
    assert resolve_policy(more, EXPO, FIXED, EXPO) == ExponentialPolicy(5, 1_000, 60_000, {"max_retries": 5})
    switch = RetryOverride(
        {"strategy": "exponential", "max_retries": 1}, strategy="exponential", max_retries=1
    )
    switched = resolve_policy(switch, FIXED, FIXED, EXPO)
    assert switched == ExponentialPolicy(1, 1_000, 60_000, requested=switch.requested)
    to_fixed = RetryOverride({"strategy": "fixed"}, strategy="fixed")
    assert resolve_policy(to_fixed, EXPO, FIXED, EXPO) == FixedPolicy(
        10_000, 24 * H, requested=to_fixed.requested
    )


def test_resolve_policy_ignores_the_other_strategys_options() -> None:
    # No strategy given: the kind's stays, and options that belong to the other one do nothing.
    stray = RetryOverride({"min_delay": "1s"}, min_delay_ms=1_000)
    assert resolve_policy(stray, FIXED, FIXED, EXPO) == FixedPolicy(10_000, 24 * H, requested=stray.requested)


BOUNDS = PolicyBounds(min_delay_ms=1_000, max_age_ms=24 * H)
MS = st.integers(0, 10**12)


def test_a_policy_inside_the_bounds_is_kept_as_is() -> None:
    assert bounded(FIXED, BOUNDS) is FIXED and bounded(EXPO, BOUNDS) is EXPO


def test_a_stored_policy_outside_the_bounds_is_clamped() -> None:
    """A task stored before the bounds existed (`interval: 0s`, `max_age: 1000000d`) cannot hammer."""
    hammer = FixedPolicy(interval_ms=0, max_age_ms=1_000_000 * 24 * H, requested={"interval": "0s"})
    assert bounded(hammer, BOUNDS) == FixedPolicy(1_000, 24 * H, requested={"interval": "0s"})
    assert bounded(ExponentialPolicy(5, 0, 10**12), BOUNDS) == ExponentialPolicy(5, 1_000, 24 * H)


@given(st.one_of(st.builds(FixedPolicy, MS, MS), st.builds(ExponentialPolicy, st.integers(0, 100), MS, MS)))
def test_no_retry_of_a_bounded_policy_comes_sooner_than_the_floor(
    policy: FixedPolicy | ExponentialPolicy,
) -> None:
    """Whatever was stored, and a receiver answering 429 without Retry-After: >= 1 s between tries."""
    clamped = bounded(policy, BOUNDS)
    too_many = AttemptResult(Outcome.TRANSIENT, status_code=429)
    for attempts in (1, 2, 7):
        d = decide(clamped, too_many, attempts=attempts, created_at=0, now=0, rng=random.Random(attempts))
        assert d.status is TaskStatus.FAILED or (d.next_attempt_at or 0) >= 1_000


def test_a_429_without_retry_after_waits_the_tasks_own_schedule() -> None:
    slow = FixedPolicy(interval_ms=30_000, max_age_ms=H)
    too_many = AttemptResult(Outcome.TRANSIENT, status_code=429)
    assert decide(slow, too_many, attempts=1, created_at=0, now=0).next_attempt_at == 30_000


def test_an_exponential_task_honours_retry_after_up_to_its_max_delay() -> None:
    huge = AttemptResult(Outcome.TRANSIENT, status_code=503, retry_after_ms=10**12)
    d = decide(EXPO, huge, attempts=1, created_at=0, now=0)
    assert d.status is TaskStatus.RETRYING and d.next_attempt_at == 60_000
    fair = AttemptResult(Outcome.TRANSIENT, status_code=429, retry_after_ms=30_000)
    assert decide(EXPO, fair, attempts=1, created_at=0, now=0).next_attempt_at == 30_000
