"""Utility and demo kinds of the systems we replace: echo, reverse, sum, math, slow/long, flaky.

Payloads are checked at submit time, so a bad one is a 422 naming the field rather than a failed
task. The stored payload is the one the client sent (only missing defaults are filled in), and
the handlers parse it again with the same helpers as the checks: cheap, and one place to read.
"""

from __future__ import annotations

import math
import random
import time
from typing import Annotated, Literal

import msgspec

from queue_system.errors import PermanentError, TransientError
from queue_system.kinds.registry import RunContext, payload_error, task_kind

MAX_SLOW_S = 300.0

# int as well as float, so the stored payload keeps a client's 5 as 5 rather than 5.0.
Number = int | float


# --- echo, reverse -----------------------------------------------------------------------------


@task_kind("echo", payload=str)
def echo(text: str, ctx: RunContext) -> str:
    return f"echo: {text}"


@task_kind("reverse", payload=str)
def reverse(text: str, ctx: RunContext) -> str:
    return text[::-1]


# --- sum ---------------------------------------------------------------------------------------


def _numbers(payload: list[Number] | str) -> list[Number]:
    """The payload as numbers: a JSON array, or the same array written as a string."""
    if isinstance(payload, str):
        try:
            payload = msgspec.json.decode(payload, type=list[Number])
        except msgspec.DecodeError as exc:
            raise payload_error("", f"not a JSON array of numbers ({exc})") from None
    for i, number in enumerate(payload):
        if not math.isfinite(number):
            raise payload_error(f"[{i}]", "must be a finite number")
    return payload


def check_sum(payload: list[Number] | str) -> list[Number] | str:
    _numbers(payload)
    return payload


def _two_decimals(value: float) -> str:
    if not math.isfinite(value):
        raise PermanentError("the result is too large to represent")
    return f"{value:.2f}" if round(value, 2) != 0 else "0.00"  # never "-0.00"


@task_kind("sum", payload=list[Number] | str, check=check_sum)
def add_up(payload: list[Number] | str, ctx: RunContext) -> str:
    return _two_decimals(math.fsum(_numbers(payload)))


# --- math --------------------------------------------------------------------------------------


class Math(msgspec.Struct, forbid_unknown_fields=True):
    a: Number | str  # numbers may come as strings: "5"
    b: Number | str
    op: Literal["add", "sub", "mul", "div"] = "add"


def _number(name: str, value: Number | str) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise payload_error(name, f"{value!r} is not a number") from None
    if not math.isfinite(value):
        raise payload_error(name, "must be a finite number")
    return value


def check_math(payload: Math) -> Math:
    _number("a", payload.a)
    _number("b", payload.b)
    return payload


@task_kind("math", payload=Math, check=check_math)
def calculate(payload: Math, ctx: RunContext) -> str:
    a, b = _number("a", payload.a), _number("b", payload.b)
    if payload.op == "add":
        value = a + b
    elif payload.op == "sub":
        value = a - b
    elif payload.op == "mul":
        value = a * b
    elif b == 0:
        raise PermanentError(f"division by zero: cannot divide {a:g} by 0")
    else:
        value = a / b
    return _two_decimals(value)


# --- slow / long -------------------------------------------------------------------------------


class Slow(msgspec.Struct, forbid_unknown_fields=True):
    seconds: Annotated[float, msgspec.Meta(ge=0, le=MAX_SLOW_S)] = 5.0


def check_slow(payload: Slow | None) -> Slow:
    return payload or Slow()  # no payload at all: the defaults


@task_kind("long", payload=Slow | None, check=check_slow)
@task_kind("slow", payload=Slow | None, check=check_slow)
def slow(payload: Slow, ctx: RunContext) -> str:
    """Sleeps, waking at once when the worker shuts down: the task is then retried, not lost."""
    deadline = time.monotonic() + payload.seconds
    while (left := deadline - time.monotonic()) > 0:
        if ctx.stopping.wait(left):
            raise TransientError("interrupted by worker shutdown")
    return f"slept {payload.seconds:g}s"


# --- flaky -------------------------------------------------------------------------------------


class Flaky(msgspec.Struct, forbid_unknown_fields=True):
    fail_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.5


def check_flaky(payload: Flaky | None) -> Flaky:
    return payload or Flaky()


_rng = random.Random()


@task_kind("flaky", payload=Flaky | None, check=check_flaky)
def flaky(payload: Flaky, ctx: RunContext) -> str:
    """Fails with probability `fail_rate`, to show retries."""
    if _rng.random() < payload.fail_rate:
        raise TransientError(f"simulated failure (fail_rate {payload.fail_rate:g})")
    return f"succeeded on attempt {ctx.attempt}"
