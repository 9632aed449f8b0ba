"""Schedules in Redis (keys `sched`, `sched-runs`, `scheds`, `scheds:due`: storage/keys.py).

Every change is one script: lua/schedule_save.lua (create, PATCH), lua/schedule_delete.lua, and
lua/fire.lua (a firing: the tick's tasks created through common.lua's `create_task`, exactly as a
submit creates one, and the next run moved, only if the tick is still the schedule's current one).
`ScheduleStore` is the reconciler's (sync), `AsyncScheduleStore` the API's.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, NamedTuple

import msgspec
import redis
import redis.asyncio as aioredis

from queue_system.domain.schedules import MAX_SCHEDULES
from queue_system.storage import scripts
from queue_system.storage.codec import flat_pairs
from queue_system.storage.keys import Keys


class Template(msgspec.Struct, frozen=True):
    """A task as the create path resolved it (service/tasks.py `prepare`): what fire.lua stores."""

    type: str
    queue: str
    payload: str  # JSON
    fingerprint: str
    extra: list[str]  # field, value, ... (retry, timeout_ms, dest, ep)


class ScheduleRecord(msgspec.Struct, frozen=True):
    id: str
    body: str  # the template as the client wrote it (JSON), for reading back and PATCH
    template: str  # Template JSON
    cron: str | None
    timezone: str | None
    every_ms: int | None
    catch_up: str
    paused: bool
    next_run_at: int
    last_run_at: int | None
    created_at: int
    last_tasks: list[str]
    overlap: str = "allow"  # `skip`: no firing while the schedule's newest task is unfinished
    skipped_ticks: int = 0  # ticks `overlap: skip` did not fire (written by fire.lua only)


def _record(fields: dict[str, str], runs: list[str]) -> ScheduleRecord:
    return ScheduleRecord(
        id=fields["id"],
        body=fields["body"],
        template=fields["template"],
        cron=fields.get("cron") or None,
        timezone=fields.get("timezone") or None,
        every_ms=int(fields["every_ms"]) if fields.get("every_ms") else None,
        catch_up=fields["catch_up"],
        paused=fields.get("paused") == "1",
        next_run_at=int(fields["next_run_at"]),
        last_run_at=int(fields["last_run_at"]) if fields.get("last_run_at") else None,
        created_at=int(fields["created_at"]),
        last_tasks=runs,
        overlap=fields.get("overlap") or "allow",  # saved before `overlap` existed: allow
        skipped_ticks=int(fields.get("skipped") or 0),
    )


def save_args(rec: ScheduleRecord, now: int, *, create: bool, most: int = MAX_SCHEDULES) -> list[Any]:
    fields = {
        "body": rec.body,
        "template": rec.template,
        "cron": rec.cron or "",
        "timezone": rec.timezone or "",
        "every_ms": str(rec.every_ms or ""),
        "catch_up": rec.catch_up,
        "overlap": rec.overlap,
    }
    return [rec.id, now, int(create), int(rec.paused), rec.next_run_at, most, *flat_pairs(fields)]


class Fired(NamedTuple):
    created: int  # tasks created
    already: int  # ticks whose task existed (a repeated firing)
    skipped: int  # ticks `overlap: skip` did not fire


class SaveResult(IntEnum):
    FULL = -1  # a create beyond SCHEDULES_MAX
    REFUSED = 0  # exists on create, missing on update
    SAVED = 1


class ScheduleStore:
    """The reconciler's side: which schedules are due, and one firing."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._fire = client.register_script(scripts.FIRE)

    def due(self, now: int, limit: int, offset: int = 0) -> list[str]:
        found: list[Any] = self.client.zrangebyscore(self.keys.scheds_due, "-inf", now, offset, limit)  # type: ignore[assignment]
        return [_s(s) for s in found]

    def due_count(self, now: int) -> int:
        return int(self.client.zcount(self.keys.scheds_due, "-inf", now))  # type: ignore[arg-type]

    def read(self, schedule_id: str) -> ScheduleRecord | None:
        fields: dict[Any, Any] = self.client.hgetall(self.keys.sched(schedule_id))  # type: ignore[assignment]
        if not fields:
            return None
        return _record({_s(k): _s(v) for k, v in fields.items()}, [])

    def fire(
        self, schedule_id: str, expected: int, ticks: list[int], next_run: int, now: int, max_last: int
    ) -> Fired | None:
        """-> what the firing did, or None: stale, paused or gone."""
        reply = self._fire(
            keys=[self.keys.prefix], args=[schedule_id, expected, next_run, now, max_last, *ticks]
        )
        if int(reply[0]) < 0:
            return None
        return Fired(int(reply[0]), int(reply[1]), int(reply[2]))


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class AsyncScheduleStore:
    """The API's side: save, read, list, delete."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._save = client.register_script(scripts.SCHEDULE_SAVE)
        self._delete = client.register_script(scripts.SCHEDULE_DELETE)

    async def save(
        self, rec: ScheduleRecord, now: int, *, create: bool, most: int = MAX_SCHEDULES
    ) -> SaveResult:
        args = save_args(rec, now, create=create, most=most)
        return SaveResult(int(await self._save(keys=[self.keys.prefix], args=args)))

    async def get(self, schedule_id: str) -> ScheduleRecord | None:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.sched(schedule_id))
            pipe.lrange(self.keys.sched_runs(schedule_id), 0, -1)
            fields, runs = await pipe.execute()
        if not fields:
            return None
        return _record({_s(k): _s(v) for k, v in fields.items()}, [_s(r) for r in runs])

    async def page(self, cursor: int, limit: int) -> tuple[list[ScheduleRecord], int | None]:
        """Oldest first, from rank `cursor`. -> (schedules, the next cursor or None)."""
        ids = await self.client.zrange(self.keys.scheds, cursor, cursor + limit)
        out = [rec for sid in ids[:limit] if (rec := await self.get(_s(sid))) is not None]
        return out, cursor + limit if len(ids) > limit else None

    async def delete(self, schedule_id: str) -> bool:
        return bool(await self._delete(keys=[self.keys.prefix], args=[schedule_id]))
