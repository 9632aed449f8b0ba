"""The worker's store on Redis: `RedisTaskStore` (storage/types.py `TaskStore`), used from the
worker's threads (each thread has a connection of its own: storage/evalsha.py `ScriptCaller`).

Every method is one round trip: a script, or a pipeline of them (`finish_many`). The mapping of
domain types to script arguments happens here and in storage/codec.py only.
"""

from __future__ import annotations

from typing import Any

import redis

from queue_system.domain.breaker import breaker_signal
from queue_system.domain.destinations import DestinationLimits
from queue_system.domain.models import (
    MAX_HISTORY,
    MAX_LOST_IN_A_ROW,
    Attempt,
    AttemptResult,
    Task,
    TaskStatus,
)
from queue_system.domain.retry import Decision
from queue_system.storage import dramatiq_wire, scripts
from queue_system.storage.codec import attempt_to_json, claimed_task, dumps
from queue_system.storage.combiner import Combined
from queue_system.storage.evalsha import Script, ScriptCaller
from queue_system.storage.keys import Keys
from queue_system.storage.script_args import ClaimArgs, ClaimEach, FinishArgs, FinishEach, Limits, UnclaimArgs
from queue_system.storage.types import (
    Claim,
    FinishCall,
    Finished,
    MessageAck,
    Skip,
    SkipReason,
    Unclaimed,
)

# Destinations one reconciler step looks at.
WAKE_LIMIT = 100
# A host with nothing parked or in flight is forgotten (its breaker state too) this long after its
# last activity; an endpoint sooner: a host carries thousands, and a quiet one has nothing to keep.
DESTINATION_IDLE_MS = 7 * 86_400_000
ENDPOINT_IDLE_MS = 3_600_000
# Attempts one finish script records (a batch of the delivery loop's completions; more: several
# calls, so one script never holds Redis long).
FINISH_BATCH = 64


def ack_args(ack: MessageAck | None) -> tuple[str, str]:
    """The message to acknowledge as finish.lua and unclaim.lua take it (FinishArgs.consumer and
    .queue: the script names the keys); ('', ''): nothing to acknowledge."""
    return ("", "") if ack is None else (ack.consumer_id, ack.queue)


class RedisTaskStore:
    """Sync storage for the worker (thread-safe: each thread uses a connection of its own)."""

    def __init__(
        self, client: redis.Redis, keys: Keys | None = None, limits: DestinationLimits | None = None
    ) -> None:
        self.client = client
        self.keys = keys or Keys()
        self.limits = limits or DestinationLimits()
        self._limits = Limits.of(self.limits)
        self._caller = ScriptCaller(client)
        prefix = self.keys.prefix
        # The threads' concurrent claims go as one call of the claim script (storage/combiner.py).
        self._claim_script = Script(self._caller, scripts.CLAIM, prefix)
        self._claim = Combined(self._claim_many)
        self._finish = Script(self._caller, scripts.FINISH, prefix)
        self._promote = Script(self._caller, scripts.PROMOTE, prefix)
        self._reclaim = Script(self._caller, scripts.RECLAIM, prefix)
        self._renew = Script(self._caller, scripts.RENEW, prefix)
        self._sweep = Script(self._caller, scripts.SWEEP, prefix)
        self._redispatch = Script(self._caller, scripts.REDISPATCH, prefix)
        self._unclaim = Script(self._caller, scripts.UNCLAIM, prefix)
        self._requeue_dead = Script(self._caller, scripts.REQUEUE_DEAD, prefix)
        self._wake = Script(self._caller, scripts.WAKE, prefix)

    def close(self) -> None:
        self._caller.close()

    def claim(self, task_id: str, token: int, now: int, lease_until: int) -> Claim | Skip:
        """Start an attempt for the message (task_id, token), if it is the task's current one and
        its destination (if it has one) can take it; else it is parked (Skip PARKED)."""
        reply = self._claim(*ClaimEach(id=task_id, token=token, now=now, lease_until=lease_until))
        if reply[0] == "ok":
            _, values, payload = reply
            return Claim(claimed_task(values, payload))
        if reply[0] == "not_claimable":
            return Skip(SkipReason.NOT_CLAIMABLE, TaskStatus(reply[1]))
        if reply[0] == "parked":
            return Skip(SkipReason.PARKED, why=reply[1], level=reply[2])
        return Skip(SkipReason(reply[0]))

    def finish(
        self,
        task: Task,
        attempt: Attempt,
        decision: Decision,
        result: AttemptResult,
        *,
        now: int,
        retention_ms: int,
        ack: MessageAck | None = None,
    ) -> Finished:
        """Record the attempt of `task` (as claimed) and apply the decision: completed keeps the
        handler's result, retrying waits in the schedule, failed keeps the error; and acknowledge
        `ack`, in one script. Safe to repeat after a lost reply."""
        call = FinishCall(task, attempt, decision, result, now, ack)
        return self.finish_many([call], retention_ms=retention_ms)[0]

    def finish_many(self, calls: list[FinishCall], *, retention_ms: int) -> list[Finished]:
        """`finish` for each of `calls`, in one call of the finish script per FINISH_BATCH (its
        fixed cost paid once: lua/finish.lua). Safe to repeat after a lost reply or an error (each
        attempt already recorded says so)."""
        shared: list[Any] = list(FinishArgs.of(retention_ms, self._limits))
        out: list[Finished] = []
        for start in range(0, len(calls), FINISH_BATCH):
            args = shared.copy()
            for call in calls[start : start + FINISH_BATCH]:
                args += _finish_each(call)
            out += [Finished(bool(recorded), bool(acked)) for recorded, acked in self._finish(*args)]
        return out

    def _claim_many(self, calls: list[list[Any]]) -> list[Any]:
        """One CLAIM for the messages of `calls` (each a ClaimEach) -> a reply per message."""
        args: list[Any] = list(
            ClaimArgs(host_cap=self._limits.host_cap, endpoint_cap=self._limits.endpoint_cap)
        )
        for call in calls:
            args += call
        replies: list[Any] = self._claim_script(*args)
        return replies

    def unclaim(self, task: Task, now: int, ack: MessageAck | None = None) -> Unclaimed:
        """Undo the claim of `task` (as claimed) whose attempt never started: back to pending or
        retrying, its attempt count and trigger restored, no lease, a new token's message
        dispatched; and acknowledge `ack`, in one script."""
        consumer, queue = ack_args(ack)
        args = UnclaimArgs(
            id=task.id, token=task.token, now=now, trigger=task.trigger, consumer=consumer, queue=queue
        )
        undone, acked = self._unclaim(*args)
        return Unclaimed(bool(undone), bool(acked))

    def heartbeat(self, broker_id: str, now: int, dead_after_ms: int, *, judge: bool) -> int:
        """Mark the broker `broker_id` alive; with `judge`, put back on their queues the messages
        that brokers silent for `dead_after_ms` had fetched. -> the number put back."""
        return int(self._requeue_dead(broker_id, now, dead_after_ms, int(judge), *dramatiq_wire.CONSUMED))

    def promote_due(self, now: int, limit: int = 500) -> int:
        return int(self._promote(now, limit))

    def reclaim_expired(self, now: int, retention_ms: int, limit: int = 500) -> int:
        lim = self.limits
        return int(
            self._reclaim(
                now, limit, MAX_HISTORY, MAX_LOST_IN_A_ROW, retention_ms, lim.cooldown_ms, lim.max_cooldown_ms
            )
        )

    def renew_leases(self, lease_until: int, owned: list[tuple[str, int]]) -> int:
        if not owned:
            return 0
        args: list[Any] = [lease_until]
        for task_id, token in owned:
            args += [task_id, token]
        return int(self._renew(*args))

    def wake_destinations(self, now: int) -> tuple[int, int]:
        """Dispatch the parked tasks whose destination can take them (probes of open destinations
        whose cool-down is over, free slots of closed ones); forget long-idle destinations.
        -> (tasks dispatched, of which probes)."""
        lim = self.limits
        dispatched, probes = self._wake(
            now,
            WAKE_LIMIT,
            lim.max_inflight,
            lim.hold_ms,
            DESTINATION_IDLE_MS,
            lim.endpoint_cap,
            ENDPOINT_IDLE_MS,
        )
        return int(dispatched), int(probes)

    def sweep(self, now: int, limit: int = 500) -> int:
        return int(self._sweep(now, limit))

    def redispatch_stranded(
        self, status: TaskStatus, offset: int, now: int, min_age_ms: int, limit: int = 500
    ) -> tuple[int, int]:
        """-> (tasks checked, tasks dispatched again) of `status`, from rank `offset`, oldest first."""
        checked, redispatched = self._redispatch(status.value, offset, limit, now, min_age_ms)
        return int(checked), int(redispatched)


def _finish_each(call: FinishCall) -> FinishEach:
    status = call.decision.status
    result_json = last_error = ""
    if status is TaskStatus.COMPLETED:
        result_json = dumps(call.result.result)
    else:
        error = call.result.error or call.result.outcome.value
        last_error = f"{error}; {call.decision.reason}" if call.decision.reason else error
    consumer, queue = ack_args(call.ack)
    return FinishEach(
        id=call.task.id,
        token=call.task.token,
        now=call.now,
        status=status.value,
        next_attempt_at=call.decision.next_attempt_at or "",
        entry=attempt_to_json(call.attempt),
        result=result_json,
        last_error=last_error,
        consumer=consumer,
        queue=queue,
        signal=breaker_signal(call.result).value if call.task.dest is not None else "",
    )
