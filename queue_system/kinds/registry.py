"""The registry of task kinds, and the decorator users register their own kinds with.

    import msgspec
    from queue_system.kinds import task_kind, RunContext

    class Resize(msgspec.Struct):
        image_url: str
        width: int

    @task_kind("resize", payload=Resize)
    def resize(payload: Resize, ctx: RunContext) -> dict:
        ...
        return {"ok": True}

A handler returns a result (stored on the task) or an `AttemptResult`; raising `TransientError`
asks for a retry, `PermanentError` fails the task, any other exception counts as transient.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from queue_system.domain.models import AttemptResult, Outcome
from queue_system.domain.retry import ExponentialPolicy, FixedPolicy, RetryPolicy
from queue_system.errors import InvalidInput, UnknownTaskType
from queue_system.settings import WorkerSettings
from queue_system.validation import join_field, split_msgspec_error


class TransientError(Exception):
    """Raised by a handler: this attempt failed, a later one may succeed."""


class PermanentError(Exception):
    """Raised by a handler: retrying cannot help, fail the task now."""


@dataclass(frozen=True, slots=True)
class RunContext:
    task_id: str
    attempt: int
    timeout_s: float
    http: httpx.Client
    settings: WorkerSettings
    stopping: threading.Event  # set when the worker shuts down: long handlers should stop early


Handler = Callable[[Any, RunContext], Any]
PolicyFactory = Callable[[WorkerSettings], RetryPolicy]


def fixed_policy(s: WorkerSettings) -> FixedPolicy:
    return FixedPolicy(interval_ms=s.retry_interval_ms, max_age_ms=s.retry_max_age_ms)


def backoff_policy(s: WorkerSettings) -> ExponentialPolicy:
    return ExponentialPolicy(s.max_retries, s.backoff_min_ms, s.backoff_max_ms)


@dataclass(frozen=True, slots=True)
class TaskKind:
    name: str
    payload: Any  # a type msgspec can convert to: a Struct, str, list[float], ...
    handler: Handler
    policy: PolicyFactory = backoff_policy
    check: Callable[[Any], Any] | None = None  # semantic validation / normalisation after decoding

    def _convert(self, raw: Any) -> Any:
        try:
            value = msgspec.convert(raw, self.payload)
        except msgspec.ValidationError as exc:
            raise InvalidInput(_describe(exc, "payload"), field=_field(exc, "payload")) from None
        # An absent payload is where a check fills in defaults.
        return self.check(value) if value is None and self.check else value

    def decode(self, raw: Any, *, field_prefix: str = "payload") -> Any:
        """Validate a JSON payload; raises InvalidInput naming the field."""
        try:
            value = msgspec.convert(raw, self.payload)
        except msgspec.ValidationError as exc:
            raise InvalidInput(_describe(exc, field_prefix), field=_field(exc, field_prefix)) from None
        if self.check is None:
            return value
        try:
            return self.check(value)
        except InvalidInput as exc:  # checks name fields relative to the payload
            field = join_field(field_prefix, exc.field or "")
            message = exc.message.removeprefix(f"{exc.field}: ")
            raise InvalidInput(f"{field}: {message}", field=field, status_code=exc.status_code) from None

    def run(self, raw: Any, ctx: RunContext) -> AttemptResult:
        try:
            # The stored payload passed `check` at submit and is stored normalised: only its
            # type is rebuilt here (re-checking cost ~5% of a webhook delivery's CPU).
            value = self._convert(raw)
            out = self.handler(value, ctx)
        except InvalidInput as exc:
            field = (
                exc.field
                if exc.field and exc.field.startswith("payload")
                else join_field("payload", exc.field or "")
            )
            message = exc.message.removeprefix(f"{exc.field}: ")
            return AttemptResult(Outcome.PERMANENT, error=f"invalid payload: {field}: {message}")
        except PermanentError as exc:
            return AttemptResult(Outcome.PERMANENT, error=str(exc) or type(exc).__name__)
        except TransientError as exc:
            return AttemptResult(Outcome.TRANSIENT, error=str(exc) or type(exc).__name__)
        if isinstance(out, AttemptResult):
            return out
        return AttemptResult(Outcome.SUCCESS, result=out)


def _field(exc: msgspec.ValidationError, prefix: str) -> str:
    return join_field(prefix, split_msgspec_error(str(exc))[0])


def _describe(exc: msgspec.ValidationError, prefix: str) -> str:
    path, message = split_msgspec_error(str(exc))
    return f"{join_field(prefix, path)}: {message}"


class Registry:
    def __init__(self) -> None:
        self._kinds: dict[str, TaskKind] = {}

    def add(self, kind: TaskKind) -> TaskKind:
        self._kinds[kind.name] = kind
        return kind

    def get(self, name: str) -> TaskKind:
        kind = self._kinds.get(name)
        if kind is None:
            raise UnknownTaskType(name, self.names())
        return kind

    def names(self) -> list[str]:
        return sorted(self._kinds)

    def __contains__(self, name: object) -> bool:
        return name in self._kinds


REGISTRY = Registry()


def task_kind(
    name: str,
    *,
    payload: Any = Any,
    policy: PolicyFactory = backoff_policy,
    check: Callable[[Any], Any] | None = None,
    registry: Registry = REGISTRY,
) -> Callable[[Handler], Handler]:
    """Register a handler as the task kind `name` (see the module docstring)."""

    def register(handler: Handler) -> Handler:
        registry.add(TaskKind(name, payload, handler, policy, check))
        return handler

    return register


def load_modules(modules: Iterable[str]) -> None:
    """Import the built-in kinds and the user's `TASK_MODULES`, which register themselves."""
    importlib.import_module("queue_system.kinds.builtin")
    for module in modules:
        importlib.import_module(module)
