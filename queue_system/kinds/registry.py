"""Task kinds and their registry; the `task_kind` decorator users mark their handlers with.

    import msgspec
    from queue_system.kinds import RunContext, task_kind

    class Resize(msgspec.Struct):
        image_url: str
        width: int

    @task_kind("resize", payload=Resize)
    def resize(payload: Resize, ctx: RunContext) -> dict:
        ...
        return {"ok": True}

The decorator only marks the handler; nothing is registered at import. The composition root
(`queue_system.kinds.load_kinds(settings)`) imports the modules and adds the kinds it finds to a
`Registry` of its own. A handler returns a result (stored on the task) or an `AttemptResult`;
raising `TransientError` asks for a retry, `PermanentError` fails the task, any other exception
counts as transient.

A kind whose attempt is one outbound HTTP request may also give `request=`: a function that builds
that request (`WebhookRequest`) from the payload. The worker then sends it on its event loop, with
many in flight per process, instead of running the handler on one of its threads; the handler
stays the synchronous way to run the same attempt (tests, a runner without a loop).

A kind whose tasks go somewhere shared (a host, an endpoint) gives `destination=`: a function from
the payload to its `Destination` (domain/destinations.py); the service stores it with the task, so
the destination's cap and breakers apply, without ever asking what kind a payload is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import httpx
import msgspec

from queue_system.config.field_paths import join_field, split_msgspec_error
from queue_system.config.settings import WorkerSettings
from queue_system.domain.destinations import Destination
from queue_system.domain.models import AttemptResult, Outcome
from queue_system.domain.retry import ExponentialPolicy, FixedPolicy, PolicyBounds, RetryPolicy
from queue_system.errors import InvalidInput, PermanentError, TransientError, UnknownTaskType
from queue_system.transports.http import WebhookRequest


class RunContext(msgspec.Struct, frozen=True):
    task_id: str
    attempt: int
    timeout_s: float
    http: httpx.Client
    settings: WorkerSettings
    stopping: threading.Event  # set when the worker shuts down: long handlers should stop early


Handler = Callable[[Any, RunContext], Any]
RequestBuilder = Callable[[Any, RunContext], WebhookRequest]
DestinationOf = Callable[[Any], Destination]
PolicyFactory = Callable[[WorkerSettings], RetryPolicy]

# The attribute `task_kind` marks a handler with: the kinds it serves (a handler may serve several).
KINDS_ATTRIBUTE = "__task_kinds__"


def fixed_policy(s: WorkerSettings) -> FixedPolicy:
    return FixedPolicy(interval_ms=s.retry_interval_ms, max_age_ms=s.retry_max_age_ms)


def policy_bounds(s: WorkerSettings) -> PolicyBounds:
    """The server's bounds on a task's own policy (TASK_MIN_RETRY_DELAY, WORKER_RETRY_MAX_AGE)."""
    return PolicyBounds(min_delay_ms=s.min_retry_delay_ms, max_age_ms=s.retry_max_age_ms)


def backoff_policy(s: WorkerSettings) -> ExponentialPolicy:
    return ExponentialPolicy(
        max_retries=s.max_retries, min_delay_ms=s.backoff_min_ms, max_delay_ms=s.backoff_max_ms
    )


@dataclass(frozen=True, slots=True)
class TaskKind:
    name: str
    payload: Any  # a type msgspec can convert to: a Struct, str, list[float], ...
    handler: Handler
    policy: PolicyFactory = backoff_policy
    check: Callable[[Any], Any] | None = None  # semantic validation / normalisation after decoding
    # For a kind whose attempt is one outbound HTTP request: builds it (see the module docstring).
    request: RequestBuilder | None = None
    # For a kind whose tasks go to a shared destination: where a (decoded) payload goes.
    destination: DestinationOf | None = None

    def destination_of(self, payload: Any) -> Destination | None:
        """Where this decoded payload goes, or None for a kind without destinations."""
        return self.destination(payload) if self.destination is not None else None

    def _convert(self, raw: Any, prefix: str) -> Any:
        try:
            return msgspec.convert(raw, self.payload)
        except msgspec.ValidationError as exc:
            path, message = split_msgspec_error(str(exc))
            raise InvalidInput(message, field=join_field(prefix, path)) from None

    def decode(self, raw: Any, *, field_prefix: str = "payload") -> Any:
        """Validate a JSON payload; raises InvalidInput naming the field as the client wrote it."""
        value = self._convert(raw, field_prefix)
        if self.check is None:
            return value
        try:
            return self.check(value)
        except InvalidInput as exc:  # checks name fields relative to the payload
            field = join_field(field_prefix, exc.field or "")
            raise InvalidInput(exc.message, field=field, status_code=exc.status_code) from None

    def _stored(self, raw: Any) -> Any:
        # The stored payload passed `check` at submit and is stored normalised: only its type is
        # rebuilt here (re-checking cost ~5% of a webhook delivery's CPU).
        value = self._convert(raw, "payload")
        if value is None and self.check:  # an absent payload is where a check fills in defaults
            value = self.check(value)
        return value

    def run(self, raw: Any, ctx: RunContext) -> AttemptResult:
        try:
            out = self.handler(self._stored(raw), ctx)
        except (InvalidInput, PermanentError, TransientError) as exc:
            return _failure(exc)
        if isinstance(out, AttemptResult):
            return out
        return AttemptResult(Outcome.SUCCESS, result=out)

    def build_request(self, raw: Any, ctx: RunContext) -> WebhookRequest | AttemptResult:
        """The attempt's request (a kind with `request`), or the attempt's failure to build one."""
        if self.request is None:
            raise TypeError(f"task kind {self.name!r} has no request builder")
        try:
            return self.request(self._stored(raw), ctx)
        except (InvalidInput, PermanentError, TransientError) as exc:
            return _failure(exc)


def _failure(exc: InvalidInput | PermanentError | TransientError) -> AttemptResult:
    if isinstance(exc, InvalidInput):
        field = exc.field or ""
        field = field if field.startswith("payload") else join_field("payload", field)
        return AttemptResult(Outcome.PERMANENT, error=f"invalid payload: {field}: {exc.message}")
    outcome = Outcome.PERMANENT if isinstance(exc, PermanentError) else Outcome.TRANSIENT
    return AttemptResult(outcome, error=str(exc) or type(exc).__name__)


def payload_error(path: str, message: str) -> InvalidInput:
    """InvalidInput for a place in the payload: path is "" (the payload itself), ".a" or "to[1]".
    The field is relative to the payload; `TaskKind.decode` prefixes it as the client wrote it."""
    return InvalidInput(message, field=path.lstrip(".") or None)


class Registry:
    def __init__(self, kinds: Iterable[TaskKind] = ()) -> None:
        self._kinds: dict[str, TaskKind] = {}
        for kind in kinds:
            self.add(kind)

    def add(self, kind: TaskKind) -> TaskKind:
        self._kinds[kind.name] = kind
        return kind

    def add_module(self, module: ModuleType) -> None:
        """Add every kind a handler in `module` is marked with by `task_kind`."""
        for value in vars(module).values():
            for kind in getattr(value, KINDS_ATTRIBUTE, ()):
                self.add(kind)

    def get(self, name: str) -> TaskKind:
        kind = self._kinds.get(name)
        if kind is None:
            raise UnknownTaskType(name, self.names())
        return kind

    def names(self) -> list[str]:
        return sorted(self._kinds)

    def __contains__(self, name: object) -> bool:
        return name in self._kinds


def task_kind(
    name: str,
    *,
    payload: Any = Any,
    policy: PolicyFactory = backoff_policy,
    check: Callable[[Any], Any] | None = None,
    request: RequestBuilder | None = None,
    destination: DestinationOf | None = None,
) -> Callable[[Handler], Handler]:
    """Mark a handler as the task kind `name` (see the module docstring)."""

    def mark(handler: Handler) -> Handler:
        kind = TaskKind(name, payload, handler, policy, check, request, destination)
        kinds = (*getattr(handler, KINDS_ATTRIBUTE, ()), kind)
        setattr(handler, KINDS_ATTRIBUTE, kinds)
        return handler

    return mark
