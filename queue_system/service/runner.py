"""Running one task message: claim, run the kind's handler, record the attempt, decide what next.

`TaskRunner.run(task_id, token, ack)` runs a message on the calling thread. A message whose token
is stale, or whose task is finished, cancelled or gone, is skipped: Dramatiq delivers at least
once, so duplicates are normal. `ack` is the message's acknowledgement, opaque here: the store's
finish does it in the same script that records the attempt, and `run` says whether it did.

The steps are public for the worker's attempt owner (worker/attempts.py), which sends a webhook's
request on its event loop instead of on a thread: `claim`, `context`, `finish_call` (the policy's
decision and the attempt record), `record` (a batch of FINISH in one pipeline, through the outage
retry, each acking its message) and `give_back` (UNCLAIM: the claim undone, a new message).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
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
from queue_system.storage.types import Claim, FinishCall, Finished, MessageAck, Skip, TaskStore

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


@dataclass
class TaskRunner:
    store: TaskStore
    registry: Registry
    settings: Settings
    http: httpx.Client
    in_flight: InFlight
    stopping: threading.Event
    observer: Observer = field(default_factory=NullObserver)  # ops: metrics of each attempt
    _policies: dict[str, RetryPolicy] = field(default_factory=dict, repr=False)

    def claim(self, task_id: str, token: int) -> tuple[Claim | Skip, int]:
        """Claim the message (task_id, token), through an outage. -> (the claim, its time in ms)."""
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
        return claim, now

    def kind(self, task: Task) -> TaskKind | None:
        return self.registry.get(task.type) if task.type in self.registry else None

    def run(self, task_id: str, token: int, ack: MessageAck | None = None) -> bool:
        """Claim and run the message on this thread. -> True when our script acked `ack`."""
        claim, now = self.claim(task_id, token)
        if isinstance(claim, Skip):
            return False
        task = claim.task
        with logger.contextualize(task_id=task_id, attempt=task.attempts):
            self.in_flight.add((task_id, token))
            try:
                return self.attempt(task, self.kind(task), now, ack)
            finally:
                self.in_flight.discard((task_id, token))

    def give_back(self, task: Task, ack: MessageAck | None) -> bool:
        """Undo the claim of an attempt that never started (UNCLAIM). -> True when `ack` was acked."""
        undone = through_outage("giving the task back", lambda: self.store.unclaim(task, now_ms(), ack))
        logger.debug("gave back {} (undone: {})", task.id, undone.undone)
        return undone.acked

    def attempt(self, task: Task, kind: TaskKind | None, started_at: int, ack: MessageAck | None) -> bool:
        """Run the claimed attempt here and record it. -> True when the script acked `ack`."""
        t0 = time.perf_counter()
        try:
            result = self._execute(task, kind)
        except Exception as exc:  # a bug in a handler must not lose the task
            logger.exception("handler raised")
            result = AttemptResult(Outcome.TRANSIENT, error=f"{type(exc).__name__}: {exc}")
        duration_ms = int((time.perf_counter() - t0) * 1000)
        call = self.finish_call(task, kind, started_at, result, duration_ms, ack)
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
        return done.acked

    def record(self, calls: list[FinishCall]) -> list[Finished]:
        """Record a batch of attempts run elsewhere (the delivery loop's): one pipeline of FINISH
        scripts, each acking its message; then log and count them."""
        retention_ms = self.settings.retention_ms
        done = through_outage(
            f"recording the attempts of {len(calls)} deliveries",
            lambda: self.store.finish_many(calls, retention_ms=retention_ms),
        )
        for call, finished in zip(calls, done, strict=True):
            duration_ms = call.attempt.duration_ms
            with logger.contextualize(task_id=call.task.id, attempt=call.task.attempts):
                self._log(call.task, call.result, call.decision, duration_ms, finished.recorded)
            self._observe(call.task, call.result, call.decision, duration_ms)
        return done

    def _observe(self, task: Task, result: AttemptResult, decision: Decision, duration_ms: int) -> None:
        self.observer.attempt_finished(
            task.type, result.outcome, decision.status, duration_ms / 1000, result.status_code
        )

    def finish_call(
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
        )
        return FinishCall(task, attempt, decision, result, now, ack)

    def _execute(self, task: Task, kind: TaskKind | None) -> AttemptResult:
        if kind is None:
            # Transient: a worker that knows the type may be deploying (TASK_MODULES).
            return AttemptResult(Outcome.TRANSIENT, error=f"unknown task type {task.type!r} on this worker")
        return kind.run(task.payload, self.context(task))

    def context(self, task: Task) -> RunContext:
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
