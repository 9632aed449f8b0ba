"""Running one task message: claim, run the kind's handler, record the attempt, decide what next.

The actor calls `TaskRunner.run(task_id, token, ack)`. A message whose token is stale, or whose
task is finished, cancelled or gone, is skipped: Dramatiq delivers at least once, so duplicates are
normal. `ack` is the message's acknowledgement, opaque here: the store's finish does it in the same
script that records the attempt, and `run` reports what became of it (`Ran`).

A kind whose attempt is one outbound HTTP request (`TaskKind.request`) is not run on the calling
thread when the runner has a `hand_off` (the worker's delivery loop): the claimed task's request
is handed over and `run` returns HANDED_OFF at once, the message still unacknowledged. The loop's
completion thread later calls `record(...)` with a batch of outcomes: it applies the policy and
records each attempt with FINISH (one pipeline, through the outage retry), which acks its message.
A hand-off the loop refuses (stopping, no room) is given back with UNCLAIM (`give_back`): the claim
is undone and a new message dispatched, so the task waits as if never fetched.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

import httpx
import msgspec
import redis
from loguru import logger

from queue_system.config.settings import Settings
from queue_system.domain.models import MAX_RESPONSE_BODY, Attempt, AttemptResult, Outcome, Task, TaskStatus
from queue_system.domain.redaction import redact_text
from queue_system.domain.retry import Decision, RetryPolicy, bounded, decide
from queue_system.errors import StorageUnavailable
from queue_system.kinds.registry import Registry, RunContext, TaskKind, backoff_policy, policy_bounds
from queue_system.service.clock import now_ms
from queue_system.service.observe import NullObserver, Observer
from queue_system.storage.failures import classify
from queue_system.storage.types import Claim, FinishCall, MessageAck, Skip, TaskStore
from queue_system.transports.http import WebhookRequest

T = TypeVar("T")
# How long a worker thread holds a claim or an attempt's outcome while Redis is unreachable.
OUTAGE_WAIT_S = 60.0


def through_outage(what: str, call: Callable[[], T], wait_s: float = OUTAGE_WAIT_S) -> T:
    """`call()`, retried while Redis is unavailable (unreachable, or refusing writes: out of memory,
    a read-only replica during a failover), for up to `wait_s`.

    A Redis restart, failover or full memory must not cost a task: the attempt's outcome is held
    until Redis takes it (FINISH is idempotent for a repeated call), rather than left to the lease
    expiry, which would run the attempt a second time. A longer outage raises, and so does any
    other error (a script or data error: retrying cannot help); the lease then recovers the task."""
    delay, waited = 0.05, 0.0
    while True:
        try:
            return call()
        except redis.RedisError as exc:
            if waited >= wait_s or not isinstance(classify(exc), StorageUnavailable):
                raise
            if waited == 0:
                logger.warning("Redis unavailable while {}; retrying up to {:g}s: {}", what, wait_s, exc)
            time.sleep(delay)
            waited += delay
            delay = min(delay * 2, 1.0)


class InFlight:
    """The (task_id, token) pairs this process is running; their leases are renewed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: set[tuple[str, int]] = set()

    def add(self, item: tuple[str, int]) -> None:
        with self._lock:
            self._items.add(item)

    def discard(self, item: tuple[str, int]) -> None:
        with self._lock:
            self._items.discard(item)

    def snapshot(self) -> list[tuple[str, int]]:
        with self._lock:
            return list(self._items)


class Ran(StrEnum):
    """What became of a message's acknowledgement in `TaskRunner.run`."""

    ACKED = "acked"  # the script that recorded (or undid) the attempt acknowledged it
    NOT_ACKED = "not_acked"  # skipped, or recorded without acking: the consumer acks it
    HANDED_OFF = "handed_off"  # the attempt runs on the delivery loop; its FINISH will ack it


class HandOff(msgspec.Struct, frozen=True):
    """A claimed task whose attempt is one HTTP request, handed to the worker's delivery loop."""

    task: Task
    request: WebhookRequest
    timeout_s: float
    started_at: int  # epoch ms of the claim
    ack: MessageAck | None


class Delivered(msgspec.Struct, frozen=True):
    """A handed-off attempt's outcome, back from the delivery loop."""

    hand_off: HandOff
    result: AttemptResult
    duration_ms: int


@dataclass
class TaskRunner:
    store: TaskStore
    registry: Registry
    settings: Settings
    http: httpx.Client
    in_flight: InFlight
    stopping: threading.Event
    # The worker's delivery loop: True when it took the hand-off. None: every attempt runs here.
    hand_off: Callable[[HandOff], bool] | None = None
    observer: Observer = field(default_factory=NullObserver)  # ops: metrics of each attempt
    _policies: dict[str, RetryPolicy] = field(default_factory=dict, repr=False)

    def run(self, task_id: str, token: int, ack: MessageAck | None = None) -> Ran:
        now = now_ms()

        def claim_it() -> Claim | Skip:
            nonlocal now
            now = now_ms()
            return self.store.claim(task_id, token, now, now + self.settings.worker.lease_ms)

        claim = through_outage("claiming the task", claim_it)
        if isinstance(claim, Skip):
            logger.debug(
                "skipped message for {} (token {}): {} {}", task_id, token, claim.reason, claim.status
            )
            return Ran.NOT_ACKED
        task = claim.task
        with logger.contextualize(task_id=task_id, attempt=task.attempts):
            self.in_flight.add((task_id, token))
            handed_off = False
            try:
                kind = self.registry.get(task.type) if task.type in self.registry else None
                hand_off = self.hand_off
                if kind is not None and kind.request is not None and hand_off is not None:
                    ran = self._hand_off(hand_off, task, kind, now, ack)
                    handed_off = ran is Ran.HANDED_OFF
                    if ran is not None:
                        return ran
                return self._attempt(task, kind, now, ack)
            finally:
                if not handed_off:  # a handed-off task stays in flight until its outcome is recorded
                    self.in_flight.discard((task_id, token))

    def _hand_off(
        self,
        hand_off: Callable[[HandOff], bool],
        task: Task,
        kind: TaskKind,
        started_at: int,
        ack: MessageAck | None,
    ) -> Ran | None:
        """Hand the attempt's request to the loop; None: no request could be built, run it here
        (the handler reports the same failure)."""
        ctx = self._context(task)
        try:
            request = kind.build_request(task.payload, ctx)
        except Exception:  # a bug in a request builder must not lose the task
            logger.exception("building the request raised")
            return None
        if not isinstance(request, WebhookRequest):
            return None
        if hand_off(HandOff(task, request, ctx.timeout_s, started_at, ack)):
            return Ran.HANDED_OFF
        return self.give_back(task, ack)

    def give_back(self, task: Task, ack: MessageAck | None) -> Ran:
        """Undo the claim of an attempt that never started (UNCLAIM); its message is acked."""
        undone = through_outage("giving the task back", lambda: self.store.unclaim(task, now_ms(), ack))
        logger.debug("gave back {} (undone: {})", task.id, undone.undone)
        return Ran.ACKED if undone.acked else Ran.NOT_ACKED

    def give_back_unsent(self, hand_offs: list[HandOff]) -> None:
        """Give back hand-offs the loop never started (it is stopping): each task waits for a new
        message, as if never fetched, and leaves the in-flight set."""
        for h in hand_offs:
            try:
                self.give_back(h.task, h.ack)
            except redis.RedisError as exc:  # its lease recovers it
                logger.warning("could not give back {}: {}", h.task.id, exc)
            finally:
                self.in_flight.discard((h.task.id, h.task.token))

    def _attempt(self, task: Task, kind: TaskKind | None, started_at: int, ack: MessageAck | None) -> Ran:
        t0 = time.perf_counter()
        try:
            result = self._execute(task, kind)
        except Exception as exc:  # a bug in a handler must not lose the task
            logger.exception("handler raised")
            result = AttemptResult(Outcome.TRANSIENT, error=f"{type(exc).__name__}: {exc}")
        duration_ms = int((time.perf_counter() - t0) * 1000)
        call = self._finish_call(task, kind, started_at, result, duration_ms, ack)
        retention_ms = self.settings.retention_ms
        done = through_outage(
            "recording the attempt",
            lambda: self.store.finish(
                task,
                call.attempt,
                call.decision,
                result,
                now=call.now,
                retention_ms=retention_ms,
                ack=ack,
            ),
        )
        self._log(task, result, call.decision, duration_ms, done.recorded)
        self._observe(task, result, call.decision, duration_ms)
        return Ran.ACKED if done.acked else Ran.NOT_ACKED

    def record(self, delivered: list[Delivered]) -> None:
        """Record a batch of handed-off attempts' outcomes (the delivery loop's completion thread):
        one pipeline of FINISH scripts, each acking its message. Whatever happens, the tasks leave
        the in-flight set: one whose outcome could not be recorded is recovered by its lease."""
        try:
            calls = []
            for d in delivered:
                h = d.hand_off
                kind = self.registry.get(h.task.type) if h.task.type in self.registry else None
                calls.append(self._finish_call(h.task, kind, h.started_at, d.result, d.duration_ms, h.ack))
            retention_ms = self.settings.retention_ms
            done = through_outage(
                f"recording the attempts of {len(calls)} deliveries",
                lambda: self.store.finish_many(calls, retention_ms=retention_ms),
            )
            for d, call, finished in zip(delivered, calls, done, strict=True):
                task = d.hand_off.task
                with logger.contextualize(task_id=task.id, attempt=task.attempts):
                    self._log(task, d.result, call.decision, d.duration_ms, finished.recorded)
                self._observe(task, d.result, call.decision, d.duration_ms)
        finally:
            for d in delivered:
                self.in_flight.discard((d.hand_off.task.id, d.hand_off.task.token))

    def _observe(self, task: Task, result: AttemptResult, decision: Decision, duration_ms: int) -> None:
        self.observer.attempt_finished(
            task.type, result.outcome, decision.status, duration_ms / 1000, result.status_code
        )

    def _finish_call(
        self,
        task: Task,
        kind: TaskKind | None,
        started_at: int,
        result: AttemptResult,
        duration_ms: int,
        ack: MessageAck | None,
    ) -> FinishCall:
        now = now_ms()
        decision = decide(
            self._policy(task, kind),
            result,
            attempts=task.attempts - task.attempt_base,
            created_at=task.window_start,
            now=now,
        )
        attempt = Attempt(
            n=task.attempts,
            trigger=task.trigger,
            started_at=started_at,
            duration_ms=duration_ms,
            outcome=result.outcome,
            status_code=result.status_code,
            error=result.error,
            response_body=(result.response_body or None) and result.response_body[:MAX_RESPONSE_BODY],
            detail=result.detail,
        )
        return FinishCall(task, attempt, decision, result, now, ack)

    def _execute(self, task: Task, kind: TaskKind | None) -> AttemptResult:
        if kind is None:
            # Transient: a worker that knows the type may be deploying (TASK_MODULES).
            return AttemptResult(Outcome.TRANSIENT, error=f"unknown task type {task.type!r} on this worker")
        return kind.run(task.payload, self._context(task))

    def _context(self, task: Task) -> RunContext:
        timeout_ms = task.timeout_ms or self.settings.worker.request_timeout_ms
        return RunContext(
            task_id=task.id,
            attempt=task.attempts,
            timeout_s=timeout_ms / 1000,
            http=self.http,
            settings=self.settings.worker,
            stopping=self.stopping,
        )

    def _policy(self, task: Task, kind: TaskKind | None) -> RetryPolicy:
        """The task's own policy (resolved at submit, within the server's bounds: clamped again, for
        a task stored before a bound existed), else its kind's default."""
        if task.retry is not None:
            return bounded(task.retry, policy_bounds(self.settings.worker))
        default = self._policies.get(task.type)
        if default is None:
            default = (kind.policy if kind else backoff_policy)(self.settings.worker)
            if kind:
                self._policies[task.type] = default
        return default

    @staticmethod
    def _log(task: Task, result: AttemptResult, decision: Decision, duration_ms: int, recorded: bool) -> None:
        if not recorded:
            logger.warning("attempt finished after its lease was taken over; outcome kept in history only")
        elif decision.status is TaskStatus.COMPLETED:
            logger.info("{} {} in {}ms", task.type, decision.status.value, duration_ms)
        else:
            logger.warning(
                "{} {}: {} ({})",
                task.type,
                decision.status.value,
                redact_text(result.error) if result.error else None,  # logs are readers too
                decision.reason or "will retry",
            )
