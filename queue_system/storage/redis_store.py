"""Task storage on Redis: `TaskStore` (sync, the worker's threads) and `AsyncTaskStore` (the API).

The store speaks domain types (`Task`, `Attempt`, `Decision`, `AttemptResult`) and result types
(`Claim | Skip`, `Finished`, `ChangeResult`); the mapping to hash fields and script arguments
happens here and in codec.py only. Each method is one round trip: a Lua script or a pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import msgspec
import redis
import redis.asyncio as aioredis

from queue_system.domain.destinations import (
    BreakerState,
    Destination,
    DestinationLimits,
    DestinationReport,
    Signal,
    WaitLevel,
    WaitReason,
)
from queue_system.domain.models import (
    MAX_HISTORY,
    MAX_LOST_IN_A_ROW,
    Attempt,
    AttemptResult,
    Outcome,
    Page,
    Task,
    TaskQuery,
    TaskStatus,
)
from queue_system.domain.retry import Decision
from queue_system.storage import dramatiq_wire, scripts
from queue_system.storage.codec import attempt_to_json, claimed_task, dumps, flat_pairs, task_from_hash
from queue_system.storage.evalsha import Batcher, Replication, Script, ScriptCaller
from queue_system.storage.keys import Keys

# Rows a listing may examine while filtering before it returns a partial page with a cursor.
MAX_SCAN = 5_000
# Destinations one reconciler step looks at; destinations the stats summary counts (the most
# recently active; about 2 commands each).
WAKE_LIMIT = 100
MAX_DESTINATIONS_SCAN = 2_000
# A host with nothing parked or in flight is forgotten (its breaker state too) this long after its
# last activity; an endpoint sooner: a host carries thousands, and a quiet one has nothing to keep.
DESTINATION_IDLE_MS = 7 * 86_400_000
ENDPOINT_IDLE_MS = 3_600_000


class NewTask(msgspec.Struct, frozen=True):
    id: str
    type: str
    queue: str
    payload_json: str
    fingerprint: str
    now: int
    due: int | None = None  # epoch ms; set for a scheduled task
    extra: dict[str, str] = msgspec.field(default_factory=dict)  # retry, timeout_ms, ...


class SkipReason(StrEnum):
    """Why a message starts no attempt (Dramatiq delivers at least once: duplicates are normal)."""

    MISSING = "missing"  # the task is gone (deleted, or purged after its retention)
    NOT_CLAIMABLE = "not_claimable"  # its status is not pending/retrying: running, finished, cancelled
    STALE = "stale"  # another message (a newer token) is the task's current one
    PARKED = "parked"  # its destination cannot take it now: it waits, parked, without a message


class Claim(msgspec.Struct, frozen=True):
    """The attempt starts: the task as it now is (`processing`, attempt counted, leased)."""

    task: Task


class Skip(msgspec.Struct, frozen=True):
    reason: SkipReason
    status: TaskStatus | None = None  # for NOT_CLAIMABLE
    why: str | None = None  # for PARKED: "open" | "busy" (domain.destinations.WaitReason)
    level: str | None = None  # for PARKED: "host" | "endpoint" (domain.destinations.WaitLevel)


class Finished(msgspec.Struct, frozen=True):
    recorded: bool  # False: the lease had been taken over; the attempt went to the history only
    acked: bool  # the `ack` given to finish was acknowledged by the same script


class MessageAck(msgspec.Struct, frozen=True):
    """A broker message to acknowledge in the script that records the attempt: remove
    `message_id` from the set of fetched messages and its body from `messages`, and mark the
    consumer alive in `heartbeats`. The worker builds it (worker/broker.py); storage only hands
    the names to the script."""

    fetched: str  # set: the consumer's fetched, unacknowledged message ids
    messages: str  # hash: message id -> message body
    message_id: str
    heartbeats: str  # zset: consumer id -> last seen (ms)
    consumer_id: str


_NO_ACK = ("", "", "", "", "")


class FinishCall(msgspec.Struct, frozen=True):
    """One attempt to record (the arguments of `TaskStore.finish`), for `finish_many`."""

    task: Task
    attempt: Attempt
    decision: Decision
    result: AttemptResult
    now: int
    ack: MessageAck | None = None


class Unclaimed(msgspec.Struct, frozen=True):
    undone: bool  # False: the task was no longer this claim's (taken over, cancelled, gone)
    acked: bool  # the `ack` given to unclaim was acknowledged by the same script


def breaker_signal(result: AttemptResult) -> Signal:
    """What an attempt says about its destination (domain/destinations.py): UP (an answer below
    500), ENDPOINT_DOWN (a 5xx, a response timeout, a connection lost after it was made: the host
    answered), HOST_DOWN (the transport could not reach the host: `connect_failed`) or NONE
    (the request never went out, or was refused on our side: `about_destination` is False)."""
    if not result.about_destination:
        return Signal.NONE
    if result.status_code is not None:
        return Signal.ENDPOINT_DOWN if result.status_code >= 500 else Signal.UP
    if result.outcome is Outcome.SUCCESS:
        return Signal.UP
    if result.outcome is not Outcome.TRANSIENT:
        return Signal.NONE
    return Signal.HOST_DOWN if result.connect_failed else Signal.ENDPOINT_DOWN


class Change(StrEnum):
    """The outcome of a cancel or a manual retry."""

    DONE = "done"
    MISSING = "missing"
    REFUSED = "refused"  # the task's status does not allow it


@dataclass(frozen=True, slots=True)
class ChangeResult:
    change: Change
    status: TaskStatus | None = None  # the status that refused


def _destination(row: list[Any], level: WaitLevel) -> Destination:
    d, state, in_flight, failures, parked, open_until, cooldown_ms, last_error, last_active = row
    breaker = BreakerState(state)
    return Destination(
        destination=d,
        state=breaker,
        in_flight=int(in_flight),
        failures=int(failures),
        parked=int(parked),
        next_probe_at=int(open_until) if breaker is BreakerState.OPEN and open_until else None,
        cooldown_ms=int(cooldown_ms) if cooldown_ms else None,
        last_error=last_error or None,
        last_active_at=int(float(last_active)),
        level=level,
    )


def _change(reply: list[str]) -> ChangeResult:
    if reply[0] == "ok":
        return ChangeResult(Change.DONE)
    if reply[0] == "missing":
        return ChangeResult(Change.MISSING)
    return ChangeResult(Change.REFUSED, TaskStatus(reply[1]))


class TaskStore:
    """Sync storage for the worker (thread-safe: each thread uses a connection of its own)."""

    def __init__(
        self, client: redis.Redis, keys: Keys | None = None, limits: DestinationLimits | None = None
    ) -> None:
        self.client = client
        self.keys = keys or Keys()
        self.limits = limits or DestinationLimits()
        lim = self.limits
        self._limits = (
            lim.max_inflight,
            lim.breaker_threshold,
            lim.cooldown_ms,
            lim.max_cooldown_ms,
            lim.hold_ms,
            lim.endpoint_cap,
        )
        self._caller = ScriptCaller(client)
        prefix = self.keys.prefix
        self._claim = Script(self._caller, scripts.CLAIM, prefix)
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
        reply = self._claim(
            task_id, token, now, lease_until, self.limits.max_inflight, self.limits.endpoint_cap
        )
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
        recorded, acked = self._finish(
            *_finish_args(FinishCall(task, attempt, decision, result, now, ack), retention_ms, self._limits)
        )
        return Finished(bool(recorded), bool(acked))

    def finish_many(self, calls: list[FinishCall], *, retention_ms: int) -> list[Finished]:
        """`finish` for each of `calls`, pipelined in one round trip (each its own script: a
        failed one does not stop the others). Safe to repeat after a lost reply."""
        replies = self._finish.many([_finish_args(call, retention_ms, self._limits) for call in calls])
        out: list[Finished] = []
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
            out.append(Finished(bool(reply[0]), bool(reply[1])))
        return out

    def unclaim(self, task: Task, now: int, ack: MessageAck | None = None) -> Unclaimed:
        """Undo the claim of `task` (as claimed) whose attempt never started: back to pending or
        retrying, its attempt count and trigger restored, no lease, a new token's message
        dispatched; and acknowledge `ack`, in one script."""
        args: list[Any] = [task.id, task.token, now, task.trigger]
        args += (
            (ack.fetched, ack.messages, ack.message_id, ack.heartbeats, ack.consumer_id) if ack else _NO_ACK
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


def _finish_args(call: FinishCall, retention_ms: int, limits: Sequence[Any]) -> list[Any]:
    status = call.decision.status
    result_json = last_error = ""
    if status is TaskStatus.COMPLETED:
        result_json = dumps(call.result.result)
    else:
        error = call.result.error or call.result.outcome.value
        last_error = f"{error}; {call.decision.reason}" if call.decision.reason else error
    args: list[Any] = [
        call.task.id,
        call.task.token,
        call.now,
        status.value,
        call.decision.next_attempt_at or "",
    ]
    args += [retention_ms, attempt_to_json(call.attempt), MAX_HISTORY, result_json, last_error]
    ack = call.ack
    args += (ack.fetched, ack.messages, ack.message_id, ack.heartbeats, ack.consumer_id) if ack else _NO_ACK
    if call.task.dest is not None:  # (arguments cost Redis time: only those the script reads)
        args += [breaker_signal(call.result).value, *limits]
    return args


class AsyncTaskStore:
    """Async storage for the API. `min_replicas` > 0: a create returns only once that many replicas
    acknowledged it (`WAIT`, up to `min_replicas_timeout_ms`), else raises RedisNotReplicated."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys | None = None,
        *,
        min_replicas: int = 0,
        min_replicas_timeout_ms: int = 1000,
    ) -> None:
        self.client = client
        self.keys = keys or Keys()
        # The marker write shares readiness's probe key: one more short-lived string, no new key.
        replication = (
            Replication(min_replicas, min_replicas_timeout_ms, self.keys.probe) if min_replicas else None
        )
        self._create = Batcher(client, scripts.CREATE, self.keys.prefix, replication)
        self._cancel = client.register_script(scripts.CANCEL)
        self._delete = client.register_script(scripts.DELETE)
        self._page = client.register_script(scripts.PAGE)
        self._retry = client.register_script(scripts.RETRY)
        self._destinations = client.register_script(scripts.DESTINATIONS)

    def _k(self) -> list[str]:
        return [self.keys.prefix]

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def create(self, new: NewTask) -> tuple[bool, str]:
        """-> (True, "") created and enqueued | (False, fingerprint of the task holding that id)."""
        status = TaskStatus.SCHEDULED if new.due is not None else TaskStatus.PENDING
        args: list[Any] = [new.id, new.type, new.queue, new.now, status.value, new.due or ""]
        args += [new.fingerprint, new.payload_json, *flat_pairs(new.extra)]
        out = await self._create(*args)
        return (True, "") if out[0] == 1 else (False, out[1])

    async def get(self, task_id: str) -> Task | None:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.task(task_id))
            pipe.get(self.keys.payload(task_id))
            pipe.lrange(self.keys.history(task_id), 0, -1)
            fields, payload, history = await pipe.execute()
        if not fields:
            return None
        task = task_from_hash(fields, history, payload)
        if task.waiting and task.dest:  # why it waits now, and when its level is next probed
            endpoint = task.waiting.endpoint or task.dest
            at_endpoint = task.waiting.level is WaitLevel.ENDPOINT
            breaker = self.keys.endpoint(endpoint) if at_endpoint else self.keys.dest(task.dest)
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hmget(breaker, ["state", "open_until"])
                ((state, open_until),) = await pipe.execute()
            closed = state in (None, BreakerState.CLOSED)
            probe_at = int(open_until) if state == BreakerState.OPEN and open_until else None
            reason = WaitReason.BUSY if closed else WaitReason.OPEN
            waiting = replace(task.waiting, reason=reason, next_probe_at=probe_at)
            task = msgspec.structs.replace(task, waiting=waiting)
        return task

    async def destinations(self, now: int, limit: int) -> DestinationReport:
        """The `limit` most recently active hosts and endpoints, and a summary of all (up to
        MAX_DESTINATIONS_SCAN of each)."""
        known, n_open, parked, rows, known_ep, open_ep, ep_rows = await self._destinations(
            keys=self._k(), args=[now, limit, MAX_DESTINATIONS_SCAN]
        )
        return DestinationReport(
            int(known),
            int(n_open),
            int(parked),
            [_destination(row, WaitLevel.HOST) for row in rows],
            [_destination(row, WaitLevel.ENDPOINT) for row in ep_rows],
            int(known_ep),
            int(open_ep),
        )

    async def cancel(self, task_id: str, now: int, retention_ms: int) -> ChangeResult:
        """A waiting task (pending, scheduled, retrying) is cancelled; others are REFUSED."""
        return _change(await self._cancel(keys=self._k(), args=[task_id, now, retention_ms]))

    async def retry(self, task_id: str, now: int) -> ChangeResult:
        """A failed or cancelled task runs again now; others are REFUSED."""
        return _change(await self._retry(keys=self._k(), args=[task_id, now]))

    async def delete(self, task_id: str) -> bool:
        return bool(await self._delete(keys=self._k(), args=[task_id]))

    async def page(self, query: TaskQuery) -> Page:
        index = self.keys.index(
            status=query.statuses[0] if len(query.statuses) == 1 else None, type_=query.type
        )
        filters: dict[str, list[str]] = {}
        if len(query.statuses) > 1:
            filters["status"] = list(query.statuses)
        if query.type and len(query.statuses) == 1:
            filters["type"] = [query.type]
        if query.queue:
            filters["queue"] = [query.queue]
        if query.schedule_id:
            filters["schedule"] = [query.schedule_id]
        low = str(query.created_after) if query.created_after is not None else "-inf"
        high = str(query.created_before) if query.created_before is not None else "+inf"
        score, last = query.cursor if query.cursor else ("", "")
        args: list[Any] = [index, dumps(filters), low, high, score, last]
        rows, more, scanned_id, scanned_score = await self._page(
            keys=self._k(), args=[*args, query.limit, MAX_SCAN]
        )
        ids = rows[::2]
        async with self.client.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hgetall(self.keys.task(task_id))
                pipe.get(self.keys.payload(task_id))
            found = await pipe.execute()
        pairs = zip(found[::2], found[1::2], strict=True)
        tasks = [task_from_hash(fields, None, payload) for fields, payload in pairs if fields]
        next_cursor: tuple[int, str] | None = None
        if more and len(ids) == query.limit:
            next_cursor = (int(float(rows[-1])), ids[-1])
        elif more:
            next_cursor = (int(float(scanned_score)), scanned_id)
        return Page(tasks, next_cursor)

    async def stats(self, types: list[str], queues: list[str]) -> dict[str, Any]:
        statuses = [s.value for s in TaskStatus]
        async with self.client.pipeline(transaction=False) as pipe:
            for status in statuses:
                pipe.zcard(self.keys.index(status=status))
            for type_ in types:
                pipe.zcard(self.keys.index(type_=type_))
            for queue in queues:
                pipe.llen(self.keys.queue(queue))
                pipe.zcard(self.keys.dead_queue(queue))
            pipe.zcard(self.keys.schedule)
            pipe.zrange(self.keys.index(status=TaskStatus.PENDING.value), 0, 0, withscores=True)
            out = await pipe.execute()
        by_status = dict(zip(statuses, out[: len(statuses)], strict=True))
        rest = out[len(statuses) :]
        by_type = {t: n for t, n in zip(types, rest[: len(types)], strict=True) if n}
        rest = rest[len(types) :]
        queue_depth = {q: {"ready": rest[2 * i], "dead": rest[2 * i + 1]} for i, q in enumerate(queues)}
        oldest = rest[-1]
        return {
            "by_status": by_status,
            "by_type": by_type,
            "queues": queue_depth,
            "delayed": rest[-2],
            "oldest_pending_created_at": int(oldest[0][1]) if oldest else None,
        }
