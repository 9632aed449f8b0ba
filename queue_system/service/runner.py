"""Running one task message: claim, run the kind's handler, record the attempt, decide what next.

The actor calls `TaskRunner.run(task_id, token, ack)`. A message whose token is stale, or whose
task is finished, cancelled or gone, is skipped: Dramatiq delivers at least once, so duplicates are
normal. `ack` is the message's acknowledgement, opaque here: the store's finish does it in the same
script that records the attempt, and `run` reports whether it did (the worker then tells its
consumer not to ack again).
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

from queue_system.domain.models import MAX_RESPONSE_BODY, Attempt, AttemptResult, Outcome, Task, TaskStatus
from queue_system.domain.retry import Decision, RetryPolicy, decide
from queue_system.kinds.registry import Registry, RunContext, TaskKind, backoff_policy
from queue_system.service.clock import now_ms
from queue_system.service.observe import NullObserver, Observer
from queue_system.settings import Settings
from queue_system.storage.redis_store import Claim, MessageAck, Skip, TaskStore

T = TypeVar("T")
# How long a worker thread holds a claim or an attempt's outcome while Redis is unreachable.
OUTAGE_WAIT_S = 60.0


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

    def run(self, task_id: str, token: int, ack: MessageAck | None = None) -> bool:
        """-> True when the attempt's finish acknowledged `ack`."""
        now = now_ms()

        def claim_it() -> Claim | Skip:
            nonlocal now
            now = now_ms()
            return self.store.claim(task_id, token, now, now + self.settings.worker.lease_ms)

        claim = self._through_outage("claiming the task", claim_it)
        if isinstance(claim, Skip):
            logger.debug(
                "skipped message for {} (token {}): {} {}", task_id, token, claim.reason, claim.status
            )
            return False
        task = claim.task
        with logger.contextualize(task_id=task_id, attempt=task.attempts):
            self.in_flight.add((task_id, token))
            try:
                return self._attempt(task, now, ack)
            finally:
                self.in_flight.discard((task_id, token))

    def _attempt(self, task: Task, started_at: int, ack: MessageAck | None) -> bool:
        kind = self.registry.get(task.type) if task.type in self.registry else None
        t0 = time.perf_counter()
        try:
            result = self._execute(task, kind)
        except Exception as exc:  # a bug in a handler must not lose the task
            logger.exception("handler raised")
            result = AttemptResult(Outcome.TRANSIENT, error=f"{type(exc).__name__}: {exc}")
        duration_ms = int((time.perf_counter() - t0) * 1000)
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
        retention_ms = self.settings.retention_ms
        done = self._through_outage(
            "recording the attempt",
            lambda: self.store.finish(
                task, attempt, decision, result, now=now, retention_ms=retention_ms, ack=ack
            ),
        )
        self._log(task, result, decision, duration_ms, done.recorded)
        self.observer.attempt_finished(
            task.type, result.outcome, decision.status, duration_ms / 1000, result.status_code
        )
        return done.acked

    def _through_outage(self, what: str, call: Callable[[], T]) -> T:
        """`call()`, retried while Redis is unreachable, for up to OUTAGE_WAIT_S.

        A Redis restart or failover must not cost a task: the attempt's outcome is held until
        Redis answers again (FINISH is idempotent for a repeated call), rather than left to the
        lease expiry, which would run the attempt a second time. A longer outage raises; the
        lease then recovers the task."""
        delay, waited = 0.05, 0.0
        while True:
            try:
                return call()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if waited >= OUTAGE_WAIT_S:
                    raise
                if waited == 0:
                    logger.warning(
                        "Redis unavailable while {}; retrying up to {:g}s: {}", what, OUTAGE_WAIT_S, exc
                    )
                time.sleep(delay)
                waited += delay
                delay = min(delay * 2, 1.0)

    def _execute(self, task: Task, kind: TaskKind | None) -> AttemptResult:
        if kind is None:
            # Transient: a worker that knows the type may be deploying (TASK_MODULES).
            return AttemptResult(Outcome.TRANSIENT, error=f"unknown task type {task.type!r} on this worker")
        timeout_ms = task.timeout_ms or self.settings.worker.request_timeout_ms
        ctx = RunContext(
            task_id=task.id,
            attempt=task.attempts,
            timeout_s=timeout_ms / 1000,
            http=self.http,
            settings=self.settings.worker,
            stopping=self.stopping,
        )
        return kind.run(task.payload, ctx)

    def _policy(self, task: Task, kind: TaskKind | None) -> RetryPolicy:
        """The task's own policy (resolved at submit), else its kind's default."""
        if task.retry is not None:
            return task.retry
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
                result.error,
                decision.reason or "will retry",
            )
