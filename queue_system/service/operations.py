"""Bulk actions' use cases: start, read, list and cancel an operation (the API), and run the running
ones a bounded step at a time (every worker's reconciler, as schedules are fired).

A step is one script (storage/lua/operation_step.lua) that takes the operation's lease, acts on up to
`STEP_ACTIONS` matching tasks, and moves the cursor with them; so a runner killed at any point
leaves the operation exactly where its last step ended, and the next runner (after the lease
expires) carries on from there. `rate` is a token bucket in the operation's record.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis
from loguru import logger

from queue_system.config.settings import Settings
from queue_system.domain.operations import BulkAction, Operation, OperationState, Step, TaskFilter
from queue_system.errors import Conflict, InvalidInput, OperationNotFound
from queue_system.service.clock import now_ms
from queue_system.service.observe import Observer
from queue_system.storage.keys import Keys
from queue_system.storage.operations import AsyncOperationStore, OperationStore

# Matching tasks one step acts on at most, and index entries it examines at most: measured at about
# 1.5 ms of Redis time for 100 retries and 2 ms for 500 entries that do not match (HMGET each), so
# the walk never holds Redis for long, whatever the filter matches (250 retries took ~9 ms).
STEP_ACTIONS = 100
STEP_EXAMINED = 500
# Steps one reconciler tick runs of one operation (each bounded): enough for a high `rate` at a
# 100 ms tick, few enough that the tick's other duties stay on time.
STEPS_PER_TICK = 8
# Running operations a tick looks at (one is stepped: the first whose lease is free).
RUNNING_SCAN = 10


@dataclass(frozen=True, slots=True)
class OperationLimits:
    default_rate: int
    max_rate: int
    retention_ms: int  # an ended operation's record
    task_retention_ms: int  # a task cancelled by one (as a single cancel)


class OperationService:
    def __init__(self, store: AsyncOperationStore, limits: OperationLimits) -> None:
        self.store = store
        self.limits = limits

    async def start(
        self, action: BulkAction, flt: TaskFilter, described: dict[str, object], rate: int | None
    ) -> Operation:
        if flt.empty:
            raise InvalidInput("give at least one filter, or `all: true` to act on every task", field="all")
        if flt.all and flt != TaskFilter(all=True):
            raise InvalidInput("`all` goes alone: drop it or the other filters", field="all")
        chosen = min(self.limits.default_rate, self.limits.max_rate) if rate is None else rate
        if not 1 <= chosen <= self.limits.max_rate:
            raise InvalidInput(f"from 1 to {self.limits.max_rate} tasks per second", field="rate")
        now = now_ms()
        op = Operation(str(uuid.uuid4()), action, described, OperationState.RUNNING, chosen, now, now)
        outcome, running = await self.store.create(op, flt, self.limits.retention_ms)
        if outcome == "full":
            raise Conflict(f"{running} operations are running already: wait for one or cancel one")
        return await self.get(op.id)

    async def get(self, operation_id: str) -> Operation:
        op = await self.store.get(operation_id)
        if op is None:
            raise OperationNotFound(operation_id)
        return op

    async def list(self, cursor: int, limit: int) -> tuple[list[Operation], int | None]:
        return await self.store.page(cursor, limit)

    async def cancel(self, operation_id: str) -> Operation:
        outcome = await self.store.cancel(operation_id, now_ms(), self.limits.retention_ms)
        if outcome == "missing":
            raise OperationNotFound(operation_id)
        if outcome != "ok":
            raise Conflict(f"the operation is {outcome} already")
        return await self.get(operation_id)


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    runner_id: str  # this process (its lease's owner)
    lease_ms: int
    burst_ms: int  # tokens a pause may save up, in time (at least a tick or two)
    retention_ms: int
    task_retention_ms: int


def _step(store: OperationStore, cfg: RunnerConfig, operation_id: str, now: int) -> Step:
    try:
        return store.step(
            operation_id, cfg.runner_id, now, lease_ms=cfg.lease_ms, max_actions=STEP_ACTIONS,
            max_examined=STEP_EXAMINED, task_retention_ms=cfg.task_retention_ms,
            retention_ms=cfg.retention_ms, burst_ms=cfg.burst_ms,
        )  # fmt: skip
    except redis.ResponseError as exc:  # a script error (damaged data, WRONGTYPE): waiting cannot cure it
        logger.error("bulk operation {} failed: {}", operation_id, exc)
        store.fail(operation_id, now, cfg.retention_ms, str(exc))
        return Step(False, "over")


def run_due(store: OperationStore, cfg: RunnerConfig, now: int, observer: Observer | None = None) -> int:
    """The reconciler's step: run the first running operation this process may (its lease free or
    its own), a few bounded steps while its tokens last. -> tasks acted on."""
    for operation_id in store.running(RUNNING_SCAN):
        step = _step(store, cfg, operation_id, now)
        if not step.ran and step.reason != "wait":
            continue  # busy (another process runs it), or it just ended: the next one
        acted, steps, started = step.acted, 1, now_ms()
        # A step that stopped at its bounds (not for want of tokens) may be followed at once.
        while (
            step.ran
            and not step.finished
            and steps < STEPS_PER_TICK
            and (step.acted == STEP_ACTIONS or step.examined == STEP_EXAMINED)
        ):
            step = _step(store, cfg, operation_id, now + now_ms() - started)  # the caller's clock, on
            acted, steps = acted + step.acted, steps + 1
        if step.finished:
            logger.info("bulk operation {} is done", operation_id)
        if acted and observer is not None and (op := store.get(operation_id)) is not None:
            observer.bulk_acted(op.action.value, acted)
        return acted
    return 0


def new_runner_id() -> str:
    return f"runner-{uuid.uuid4().hex[:12]}"


def operation_runner(
    client: redis.Redis,
    keys: Keys,
    settings: Settings,
    runner_id: str | None,
    observer: Observer | None = None,
) -> Callable[[int], int]:
    """The reconciler's hook: `run_due` bound to this process (its broker id names its lease)."""
    cfg = RunnerConfig(
        runner_id=runner_id or new_runner_id(),
        lease_ms=settings.worker.lease_ms,
        # Tokens a tick's wait saves up, so a rate above one step per tick is reached.
        burst_ms=max(250, 3 * settings.worker.poll_interval_ms),
        retention_ms=settings.operation_retention_ms,
        task_retention_ms=settings.retention_ms,
    )
    return functools.partial(run_due, OperationStore(client, keys), cfg, observer=observer)
