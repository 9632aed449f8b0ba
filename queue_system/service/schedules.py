"""Schedules' use cases: create/read/change/delete (the API) and firing (every worker's reconciler).

A schedule's template goes through the submit path (`TaskService.prepare`) when it is saved, so a
bad template is refused with the same problem a submit would get, and a firing only copies the
resolved task. Exactly once per tick: each worker plans a firing in Python (domain/schedules.py)
and one script (lua/fire.lua) applies it only if the schedule's next run is still the one planned
from; the loser of a race changes nothing.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec
from loguru import logger

from queue_system.domain.schedules import (
    MAX_LAST_TASKS,
    MAX_SCHEDULES,
    CatchUp,
    Overlap,
    Timing,
    TimingError,
    plan,
    timing,
)
from queue_system.errors import Conflict, InvalidInput, LimitReached, ScheduleNotFound
from queue_system.service.clock import now_ms
from queue_system.service.observe import NullObserver, Observer
from queue_system.service.tasks import Submission, TaskService, check_client_id
from queue_system.storage.schedules import AsyncScheduleStore, SaveResult, ScheduleStore, Template
from queue_system.storage.schedules import ScheduleRecord as ScheduleRecord  # the API's type of a schedule

DUE_BATCH = 100  # schedules one reconciler tick reads and fires at a time
# How long one reconciler tick fires schedules at most (a batch of 100 took ~15 ms here).
FIRE_BUDGET_S = 0.05
# A list cursor is a rank in the schedules' zset: ASCII digits, short enough that rank + limit stays
# inside the int64 Redis reads a ZRANGE index as (a longer one was a 500; `str.isdigit` also
# passed superscripts and other scripts' digits).
_CURSOR = re.compile(r"[0-9]{1,15}")


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """What a client asks for: a submission (the template), its body as written, and the timing."""

    submission: Submission
    body: Any
    cron: str | None = None
    timezone: str | None = None
    every_ms: int | None = None
    catch_up: str = "latest"
    overlap: str = "allow"
    paused: bool = False
    id: str | None = None  # the client's: a create with it again and the same spec is idempotent


def _timing(spec: ScheduleSpec) -> Timing:
    try:
        return timing(spec.cron, spec.timezone, spec.every_ms)
    except TimingError as exc:
        raise InvalidInput(exc.message, field=exc.field) from None


def _next_run(t: Timing, now: int) -> int:
    """A cron can parse and never run: "0 0 */30 2 1#5" is the 1st or 31st of February that is a
    fifth Monday (with a `*` field, Debian cron wants day and weekday both); cronsim gives up after
    50 years of no match. A 422 naming `cron`, not a 500."""
    try:
        return t.next_after(now)
    except TimingError as exc:
        raise InvalidInput("never runs: no tick in the next 50 years", field=exc.field) from None


def _template(tasks: TaskService, sub: Submission, now: int) -> str:
    if sub.id is not None:
        raise InvalidInput("a schedule's tasks get their ids from the schedule and tick", field="task.id")
    if sub.delay_ms is not None or sub.run_at is not None:
        raise InvalidInput("a schedule's tasks run at its ticks", field="task.delay")
    try:
        new, _, _ = tasks.prepare(sub, now)
    except InvalidInput as exc:  # named as the client wrote it: inside `task`
        field = f"task.{exc.field}" if exc.field else "task"
        raise InvalidInput(exc.message, field=field, status_code=exc.status_code) from None
    extra = [x for pair in new.extra.items() for x in pair]
    return msgspec.json.encode(
        Template(new.type, new.queue, new.payload_json, new.fingerprint, extra)
    ).decode()


def _checked_id(sid: str | None) -> str:
    """A client's id, checked as a task id is (so it is safe in a URL), or a new UUID."""
    if sid is None:
        return str(uuid.uuid4())
    check_client_id(sid)
    return sid


def same_spec(old: ScheduleRecord, new: ScheduleRecord) -> bool:
    """What a repeated create must match: the task as written and the timing. Not `paused`: an
    operator's pause must not turn the next deploy of a schedule kept as code into a 409."""
    timing = (old.cron, old.timezone, old.every_ms, old.catch_up, old.overlap)
    same_timing = timing == (new.cron, new.timezone, new.every_ms, new.catch_up, new.overlap)
    return same_timing and msgspec.json.decode(old.body) == msgspec.json.decode(new.body)


def timing_of(rec: ScheduleRecord) -> Timing:
    if rec.every_ms is not None:
        return Timing(every_ms=rec.every_ms)
    return Timing(cron=rec.cron, timezone=rec.timezone or "UTC")


def rank_cursor(text: str | None) -> int:
    """A list cursor from outside (`next_cursor` of a page) -> the rank; InvalidInput (400) if not one."""
    if text is None:
        return 0
    if not _CURSOR.fullmatch(text):
        raise InvalidInput("not a cursor this API returned", field="cursor", status_code=400)
    return int(text)


class ScheduleService:
    def __init__(
        self, store: AsyncScheduleStore, tasks: TaskService, max_schedules: int = MAX_SCHEDULES
    ) -> None:
        self.store = store
        self.tasks = tasks
        self.max_schedules = max_schedules  # SCHEDULES_MAX: checked in the create's script

    async def create(self, spec: ScheduleSpec) -> tuple[ScheduleRecord, bool]:
        """-> (the schedule, created). With the client's `id`: the same spec again answers the
        existing schedule (created False); another spec under that id is a Conflict."""
        now = now_ms()
        rec = self._record(_checked_id(spec.id), spec, now, created_at=now)
        for _ in range(2):  # the second pass: the clashing schedule was deleted meanwhile
            saved = await self.store.save(rec, now, create=True, most=self.max_schedules)
            if saved is SaveResult.SAVED:
                return await self.get(rec.id), True
            if saved is SaveResult.FULL:
                raise LimitReached(
                    f"limit reached: SCHEDULES_MAX is {self.max_schedules}; delete a schedule first",
                    setting="SCHEDULES_MAX",
                    limit=self.max_schedules,
                )
            old = await self.store.get(rec.id)
            if old is not None:
                if not same_spec(old, rec):
                    raise Conflict(f"schedule {rec.id!r} exists with another task or timing")
                return old, False
        raise Conflict(f"schedule {rec.id!r} is being created and deleted at the same time")

    def _record(self, sid: str, spec: ScheduleSpec, now: int, created_at: int) -> ScheduleRecord:
        t = _timing(spec)
        try:
            catch_up = CatchUp(spec.catch_up).value
        except ValueError:
            raise InvalidInput("one of latest, none, all", field="catch_up") from None
        try:
            overlap = Overlap(spec.overlap).value
        except ValueError:
            raise InvalidInput("one of allow, skip", field="overlap") from None
        template = _template(self.tasks, spec.submission, now)
        next_run = _next_run(t, now)
        return ScheduleRecord(
            id=sid, body=msgspec.json.encode(spec.body).decode(), template=template, cron=t.cron,
            timezone=t.timezone if t.cron else None, every_ms=t.every_ms, catch_up=catch_up,
            paused=spec.paused, next_run_at=next_run, last_run_at=None, created_at=created_at,
            last_tasks=[], overlap=overlap,
        )  # fmt: skip

    async def get(self, sid: str) -> ScheduleRecord:
        rec = await self.store.get(sid)
        if rec is None:
            raise ScheduleNotFound(sid)
        return rec

    async def replace(self, sid: str, spec: ScheduleSpec) -> ScheduleRecord:
        """A PATCH, merged by the caller into a whole spec: saved in one script; the next run anew
        if the timing changed (or a pause ended), else kept."""
        old = await self.get(sid)
        now = now_ms()
        rec = self._record(sid, spec, now, created_at=old.created_at)
        if not old.paused and not rec.paused and timing_of(rec) == timing_of(old):
            # The same timing: the next run stays, due or not (a task fixed during an outage must
            # not skip the ticks `catch_up` would fire).
            rec = msgspec.structs.replace(rec, next_run_at=old.next_run_at)
        if await self.store.save(rec, now, create=False) is not SaveResult.SAVED:
            raise ScheduleNotFound(sid)
        return await self.get(sid)

    async def pause(self, sid: str, paused: bool) -> ScheduleRecord:
        old = await self.get(sid)
        now = now_ms()
        nxt = _next_run(timing_of(old), now) if not paused else old.next_run_at
        saved = await self.store.save(
            msgspec.structs.replace(old, paused=paused, next_run_at=nxt), now, create=False
        )
        if saved is not SaveResult.SAVED:
            raise ScheduleNotFound(sid)
        return await self.get(sid)

    async def list(self, cursor: int, limit: int) -> tuple[list[ScheduleRecord], int | None]:
        return await self.store.page(cursor, limit)

    async def delete(self, sid: str) -> None:
        if not await self.store.delete(sid):
            raise ScheduleNotFound(sid)


def fire_due(
    store: ScheduleStore, now: int, observer: Observer | None = None, budget_s: float = FIRE_BUDGET_S
) -> int:
    """The reconciler's step: fire due schedules, a batch of DUE_BATCH at a time, until none is
    left or `budget_s` is spent (the tick's other duties, lease renewal first, wait meanwhile).
    -> tasks created. With more due than a batch, each batch starts at a random rank among them:
    worker processes firing at once take different schedules instead of racing for the same."""
    observer = observer or NullObserver()
    began, created = time.monotonic(), 0
    while True:
        count = store.due_count(now)
        offset = random.randrange(count - DUE_BATCH + 1) if count > DUE_BATCH else 0
        for sid in store.due(now, DUE_BATCH, offset):
            created += _fire_one(store, sid, now, observer)
        if count <= DUE_BATCH or time.monotonic() - began >= budget_s:
            return created


def _fire_one(store: ScheduleStore, sid: str, now: int, observer: Observer) -> int:
    rec = store.read(sid)
    if rec is None or rec.paused:
        return 0
    try:
        p = plan(timing_of(rec), rec.next_run_at, now, CatchUp(rec.catch_up))
    except TimingError as exc:  # saved with a next run, none left since: the others still fire
        logger.warning("schedule {} cannot fire: {}", sid, exc.message)
        return 0
    out = store.fire(sid, rec.next_run_at, p.ticks, p.next_run, now, MAX_LAST_TASKS)
    if out is None:
        return 0
    kind = "every" if rec.every_ms else "cron"
    if out.skipped:  # `overlap: skip` and the previous task unfinished (or catch-up ticks dropped)
        observer.schedule_skipped(kind, out.skipped)
        logger.debug("schedule {} skipped {} tick(s): its previous task is unfinished", sid, out.skipped)
    if p.ticks and (out.created or out.already):  # this process won the firing: it alone reports it
        late = now - p.ticks[-1]
        observer.schedule_fired(kind, out.created, late / 1000)
        logger.debug("schedule {} fired {} task(s), {} ms late", sid, out.created, late)
    return out.created
