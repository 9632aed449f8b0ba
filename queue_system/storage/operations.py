"""Bulk operations in Redis (keys `op`, `ops`, `ops:running`: storage/keys.py).

Every change is one script: lua/operation_create.lua, lua/operation_end.lua (cancel, fail) and
lua/operation_step.lua (one bounded step: the actions, the cursor and the counters together).
`OperationStore` is the reconciler's (sync), `AsyncOperationStore` the API's. The mapping of
domain types (domain/operations.py) to hash fields and script arguments happens here only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import redis
import redis.asyncio as aioredis

from queue_system.domain.operations import BulkAction, Operation, OperationState, Step, TaskFilter
from queue_system.storage import scripts
from queue_system.storage.codec import dumps, flat_pairs
from queue_system.storage.keys import Keys

# Running operations at once: a start beyond it is refused (each is a record and a walk).
MAX_RUNNING = 100
_COUNTERS = ("total", "examined", "matched", "done", "failed", "skipped")


@dataclass(frozen=True, slots=True)
class Walk:
    """How a filter is walked: one index (as a listing picks it), the hash fields each entry must
    have, and the created_at range; `high` never past the operation's start."""

    index: str
    match: dict[str, list[str]]
    endpoint: str | None
    low: int
    high: int


def walk_of(flt: TaskFilter, keys: Keys, started_at: int) -> Walk:
    """The index a listing would page (storage/task_store.py `page`), and the rest as fields."""
    single = flt.statuses[0] if len(flt.statuses) == 1 else None
    index = keys.index(status=single, type_=flt.type)
    match: dict[str, list[str]] = {}
    if len(flt.statuses) > 1:
        match["status"] = list(flt.statuses)
    if flt.type and single:
        match["type"] = [flt.type]
    if flt.queue:
        match["queue"] = [flt.queue]
    if flt.destination:
        match["dest"] = [flt.destination]
    if flt.schedule_id:
        match["schedule"] = [flt.schedule_id]
    high = started_at if flt.created_before is None else min(flt.created_before, started_at)
    return Walk(index, match, flt.endpoint, flt.created_after or 0, high)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def operation_of(raw: dict[Any, Any]) -> Operation:
    f = {_s(k): _s(v) for k, v in raw.items()}
    return Operation(
        id=f["id"],
        action=BulkAction(f["action"]),
        filter=msgspec.json.decode(f["filter"]),
        state=OperationState(f["state"]),
        rate=int(f["rate"]),
        created_at=int(f["created_at"]),
        updated_at=int(f["updated_at"]),
        finished_at=int(f["finished_at"]) if f.get("finished_at") else None,
        error=f.get("error") or None,
        **{name: int(f.get(name) or 0) for name in _COUNTERS},
    )


class OperationStore:
    """The reconciler's side: which operations run, and one step of one."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._step = client.register_script(scripts.OPERATION_STEP)
        self._end = client.register_script(scripts.OPERATION_END)

    def running(self, limit: int) -> list[str]:
        """The oldest running operations first."""
        found: list[Any] = self.client.zrange(self.keys.ops_running, 0, limit - 1)  # type: ignore[assignment]
        return [_s(i) for i in found]

    def step(
        self,
        operation_id: str,
        runner: str,
        now: int,
        *,
        lease_ms: int,
        max_actions: int,
        max_examined: int,
        task_retention_ms: int,
        retention_ms: int,
        burst_ms: int,
    ) -> Step:
        args: list[Any] = [operation_id, runner, now, lease_ms, max_actions, max_examined]
        reply = self._step(keys=[self.keys.prefix], args=[*args, task_retention_ms, retention_ms, burst_ms])
        kind = _s(reply[0])
        if kind == "ran":
            return Step(True, acted=int(reply[1]), examined=int(reply[2]), finished=reply[3] == 1)
        if kind == "wait":
            return Step(False, "wait", wait_ms=int(reply[1]))
        return Step(False, kind)

    def fail(self, operation_id: str, now: int, retention_ms: int, error: str) -> None:
        """It cannot go on (its step raised a script error): `failed`, with the error kept."""
        self._end(keys=[self.keys.prefix], args=[operation_id, now, retention_ms, "failed", error[:500]])

    def get(self, operation_id: str) -> Operation | None:
        raw: dict[Any, Any] = self.client.hgetall(self.keys.op(operation_id))  # type: ignore[assignment]
        return operation_of(raw) if raw else None


class AsyncOperationStore:
    """The API's side: start, read, list, cancel."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._create = client.register_script(scripts.OPERATION_CREATE)
        self._end = client.register_script(scripts.OPERATION_END)

    async def create(self, op: Operation, flt: TaskFilter, retention_ms: int) -> tuple[str, int]:
        """-> ("ok", total) | ("exists", 0) | ("full", running operations)."""
        walk = walk_of(flt, self.keys, op.created_at)
        fields = {"action": op.action.value, "filter": dumps(op.filter), "match": dumps(walk.match)}
        fields["rate"] = str(op.rate)
        if walk.endpoint:
            fields["endpoint"] = walk.endpoint
        args: list[Any] = [op.id, op.created_at, MAX_RUNNING, retention_ms, walk.index, walk.low, walk.high]
        reply = await self._create(keys=[self.keys.prefix], args=[*args, *flat_pairs(fields)])
        return _s(reply[0]), int(reply[1]) if len(reply) > 1 else 0

    async def get(self, operation_id: str) -> Operation | None:
        raw: dict[Any, Any] = await self.client.hgetall(self.keys.op(operation_id))  # type: ignore[misc]
        return operation_of(raw) if raw else None

    async def page(self, cursor: int, limit: int) -> tuple[list[Operation], int | None]:
        """Newest first, from rank `cursor`. -> (operations, the next cursor or None)."""
        ids = await self.client.zrevrange(self.keys.ops, cursor, cursor + limit)
        async with self.client.pipeline(transaction=False) as pipe:
            for oid in ids[:limit]:
                pipe.hgetall(self.keys.op(_s(oid)))
            found = await pipe.execute()
        out = [operation_of(raw) for raw in found if raw]  # an expired one: skipped
        return out, cursor + limit if len(ids) > limit else None

    async def cancel(self, operation_id: str, now: int, retention_ms: int) -> str:
        """-> "ok" | "missing" | the state it had ended in."""
        args: list[Any] = [operation_id, now, retention_ms, "cancelled", ""]
        reply = await self._end(keys=[self.keys.prefix], args=args)
        return _s(reply[1]) if _s(reply[0]) == "over" else _s(reply[0])
