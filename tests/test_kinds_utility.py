"""The utility kinds (echo, reverse, sum, math, slow/long, flaky): validation at submit time through
`TaskKind.decode`, and each handler's outcomes through `TaskKind.run`, as the worker calls them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from queue_system.config.settings import Settings, WorkerSettings
from queue_system.domain.models import Outcome
from queue_system.errors import InvalidInput
from queue_system.kinds import RunContext, backoff_policy, load_kinds

REGISTRY = load_kinds(Settings())


@pytest.fixture
def ctx() -> Iterator[RunContext]:
    with httpx.Client() as http:
        yield RunContext(
            task_id="t-1",
            attempt=1,
            timeout_s=30,
            http=http,
            settings=WorkerSettings(),
            stopping=threading.Event(),
        )


def rejected(kind: str, payload: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        REGISTRY.get(kind).decode(payload)
    return info.value


def test_kinds_are_registered_with_the_backoff_policy() -> None:
    for name in ("echo", "reverse", "sum", "math", "slow", "long", "flaky"):
        assert REGISTRY.get(name).policy is backoff_policy


def test_echo_and_reverse(ctx: RunContext) -> None:
    echoed = REGISTRY.get("echo").run("Hello", ctx)
    assert (echoed.outcome, echoed.result) == (Outcome.SUCCESS, "echo: Hello")
    reversed_ = REGISTRY.get("reverse").run("Hello", ctx)
    assert (reversed_.outcome, reversed_.result) == (Outcome.SUCCESS, "olleH")


@pytest.mark.parametrize("kind", ["echo", "reverse"])
def test_text_kinds_want_a_string(kind: str) -> None:
    assert rejected(kind, {"text": "Hello"}).field == "payload"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [([1, 2, 5], "8.00"), ("[1, 2, 5]", "8.00"), ([0.1, 0.2], "0.30"), ([], "0.00"), ([-1.5, 1], "-0.50")],
)
def test_sum(ctx: RunContext, payload: Any, expected: str) -> None:
    kind = REGISTRY.get("sum")
    assert kind.decode(payload) == payload  # stored as the client sent it
    result = kind.run(payload, ctx)
    assert (result.outcome, result.result) == (Outcome.SUCCESS, expected)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ("[1, x]", "payload"),
        ('["1"]', "payload"),
        ("12", "payload"),
        ([1, "2"], "payload[1]"),
        ({}, "payload"),
    ],
)
def test_sum_rejects_what_is_not_an_array_of_numbers(payload: Any, field: str) -> None:
    error = rejected("sum", payload)
    assert error.field == field
    assert str(error) == f"{field}: {error.message}"  # kept apart until rendered


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"a": "5", "b": "3"}, "8.00"),  # op defaults to add
        ({"a": 5, "b": 3, "op": "sub"}, "2.00"),
        ({"a": "2.5", "b": 4, "op": "mul"}, "10.00"),
        ({"a": "1", "b": "3", "op": "div"}, "0.33"),
        ({"a": -7, "b": " 2 ", "op": "div"}, "-3.50"),
    ],
)
def test_math(ctx: RunContext, payload: dict[str, Any], expected: str) -> None:
    result = REGISTRY.get("math").run(payload, ctx)
    assert (result.outcome, result.result) == (Outcome.SUCCESS, expected)


def test_math_division_by_zero_is_permanent(ctx: RunContext) -> None:
    result = REGISTRY.get("math").run({"a": "5", "b": "0", "op": "div"}, ctx)
    assert result.outcome is Outcome.PERMANENT
    assert result.error == "division by zero: cannot divide 5 by 0"


def test_math_overflow_is_permanent(ctx: RunContext) -> None:
    result = REGISTRY.get("math").run({"a": "1e308", "b": "10", "op": "mul"}, ctx)
    assert result.outcome is Outcome.PERMANENT
    assert result.error is not None
    assert "too large" in result.error


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"a": "five", "b": "3"}, "payload.a"),
        ({"a": "5", "b": "nan"}, "payload.b"),
        ({"a": True, "b": 3}, "payload.a"),
        ({"a": 1, "b": 2, "op": "pow"}, "payload.op"),
        ({"a": 1, "b": 2, "c": 3}, "payload.c"),
    ],
)
def test_math_names_the_bad_field(payload: dict[str, Any], field: str) -> None:
    error = rejected("math", payload)
    assert error.field == field
    assert str(error) == f"{field}: {error.message}"  # kept apart until rendered


def test_math_checks_a_stored_payload_again_when_it_runs(ctx: RunContext) -> None:
    result = REGISTRY.get("math").run({"a": "five", "b": "3"}, ctx)
    assert result.outcome is Outcome.PERMANENT
    assert result.error == "invalid payload: payload.a: 'five' is not a number"


@pytest.mark.parametrize("kind", ["slow", "long"])
def test_slow_sleeps_then_succeeds(ctx: RunContext, kind: str) -> None:
    t0 = time.monotonic()
    result = REGISTRY.get(kind).run({"seconds": 0.2}, ctx)
    assert time.monotonic() - t0 >= 0.2
    assert (result.outcome, result.result) == (Outcome.SUCCESS, "slept 0.2s")


def test_slow_defaults_to_five_seconds() -> None:
    kind = REGISTRY.get("slow")
    assert kind.decode(None).seconds == 5
    assert kind.decode({}).seconds == 5


@pytest.mark.parametrize("seconds", [301, -1, "10"])
def test_slow_rejects_bad_durations(seconds: Any) -> None:
    assert rejected("long", {"seconds": seconds}).field == "payload.seconds"


def test_slow_stops_early_on_shutdown_and_stays_retryable(ctx: RunContext) -> None:
    timer = threading.Timer(0.2, ctx.stopping.set)
    timer.start()
    t0 = time.monotonic()
    try:
        result = REGISTRY.get("slow").run({"seconds": 30}, ctx)
    finally:
        timer.cancel()
    assert time.monotonic() - t0 < 5
    assert result.outcome is Outcome.TRANSIENT
    assert result.error == "interrupted by worker shutdown"


@pytest.mark.parametrize(("rate", "outcome"), [(0, Outcome.SUCCESS), (1, Outcome.TRANSIENT)])
def test_flaky_at_the_extremes(ctx: RunContext, rate: float, outcome: Outcome) -> None:
    results = [REGISTRY.get("flaky").run({"fail_rate": rate}, ctx) for _ in range(20)]
    assert {r.outcome for r in results} == {outcome}
    if outcome is Outcome.TRANSIENT:
        assert results[0].error == "simulated failure (fail_rate 1)"
    else:
        assert results[0].result == "succeeded on attempt 1"


def test_flaky_fails_about_as_often_as_asked(ctx: RunContext) -> None:
    results = [REGISTRY.get("flaky").run(None, ctx) for _ in range(2000)]  # default fail_rate 0.5
    failures = sum(r.outcome is Outcome.TRANSIENT for r in results)
    assert 800 < failures < 1200  # ~9 standard deviations: not a flaky test


@pytest.mark.parametrize("rate", [1.5, -0.1])
def test_flaky_rejects_rates_outside_0_1(rate: float) -> None:
    assert rejected("flaky", {"fail_rate": rate}).field == "payload.fail_rate"
