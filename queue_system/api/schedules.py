"""/api/v1/schedules: periodic tasks (docs/schedules.md); thin routes over ScheduleService."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, FromPath, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from queue_system.api.openapi import GUARDED_READ, GUARDED_WRITE, responses
from queue_system.api.schemas import SubmitTask, rfc3339
from queue_system.api.submission import to_submission
from queue_system.config.settings import parse_duration_ms
from queue_system.errors import InvalidInput
from queue_system.service.schedules import ScheduleRecord, ScheduleService, ScheduleSpec, rank_cursor

Schedules = NamedDependency[ScheduleService]
CatchUpName = Literal["latest", "none", "all"]
OverlapName = Literal["allow", "skip"]


class ScheduleIn(msgspec.Struct, forbid_unknown_fields=True):
    """`task`: exactly the body of POST /api/v1/tasks (without `id`, `delay`, `run_at`); either
    `cron` (five fields or `@hourly`..., read in `timezone`, IANA, default UTC) or `every` (`30s`,
    `5m`, at least 1s); `catch_up` after downtime: latest (default), none, all (the newest 100).
    `overlap` while the previous task is unfinished: allow (default: fire anyway), skip (the tick
    is skipped and counted in `skipped_ticks`).
    `id`: the client's own (as a task id: 1-128 of A-Z a-z 0-9 . _ : -); creating it again with the
    same task and timing answers 200 with the schedule, with another a 409."""

    task: SubmitTask
    id: str | None = None
    cron: str | None = None
    timezone: str | None = None
    every: str | None = None
    catch_up: CatchUpName = "latest"
    overlap: OverlapName = "allow"
    paused: bool = False


class SchedulePatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Any of a schedule's fields, the others kept; `cron` replaces `every` and the other way round;
    a new `cron` is read in the schedule's `timezone` unless one is given."""

    task: SubmitTask | None = None
    cron: str | None = None
    timezone: str | None = None
    every: str | None = None
    catch_up: CatchUpName | None = None
    overlap: OverlapName | None = None
    paused: bool | None = None


class ScheduleOut(msgspec.Struct):
    id: str
    task: Any
    cron: str | None
    timezone: str | None
    every_ms: int | None
    catch_up: str
    overlap: str
    skipped_ticks: int  # ticks `overlap: skip` did not fire
    paused: bool
    next_run_at: str | None
    last_run_at: str | None
    created_at: str
    last_tasks: list[str]  # the newest first, at most 20


class SchedulePage(msgspec.Struct):
    items: list[ScheduleOut]
    next_cursor: str | None


def schedule_out(rec: ScheduleRecord) -> ScheduleOut:
    return ScheduleOut(
        id=rec.id,
        task=msgspec.json.decode(rec.body),
        cron=rec.cron,
        timezone=rec.timezone,
        every_ms=rec.every_ms,
        catch_up=rec.catch_up,
        overlap=rec.overlap,
        skipped_ticks=rec.skipped_ticks,
        paused=rec.paused,
        next_run_at=None if rec.paused else rfc3339(rec.next_run_at),
        last_run_at=rfc3339(rec.last_run_at),
        created_at=rfc3339(rec.created_at) or "",
        last_tasks=rec.last_tasks,
    )


def _every(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_duration_ms(text)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="every") from None


def _spec(data: ScheduleIn) -> ScheduleSpec:
    try:
        sub = to_submission(data.task)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field=f"task.{exc.field}" if exc.field else "task") from None
    return ScheduleSpec(
        submission=sub,
        body=msgspec.to_builtins(data.task),
        cron=data.cron,
        timezone=data.timezone,
        every_ms=_every(data.every),
        catch_up=data.catch_up,
        overlap=data.overlap,
        paused=data.paused,
        id=data.id,
    )


def _merged(old: ScheduleRecord, data: SchedulePatch) -> ScheduleIn:
    task = data.task or msgspec.convert(msgspec.json.decode(old.body), SubmitTask)
    new_timing = data.cron is not None or data.every is not None
    every = f"{old.every_ms // 1000}s" if old.every_ms else None
    return ScheduleIn(
        task=task,
        cron=data.cron if new_timing else old.cron,
        # A new cron is read in the zone the schedule had (PATCH {"cron": ...} moved a Berlin
        # schedule to UTC, hours off); a period has none.
        timezone=data.timezone if data.timezone is not None or data.every is not None else old.timezone,
        every=data.every if new_timing else every,
        catch_up=data.catch_up or old.catch_up,  # type: ignore[arg-type]
        overlap=data.overlap or old.overlap,  # type: ignore[arg-type]
        paused=old.paused if data.paused is None else data.paused,
    )


# The 200 of a create with the client's `id`: the same task and timing were created before.
EXISTING = ResponseSpec(
    data_container=ScheduleOut,
    generate_examples=False,
    description="A schedule with this `id`, task and timing exists: that schedule, unchanged",
)
NewSchedule = Annotated[ScheduleIn, Body(description="a task template and its timing")]
ScheduleChange = Annotated[SchedulePatch, Body(description="the fields to change")]


class ScheduleController(Controller):
    path = "/api/v1/schedules"
    tags = ["schedules"]

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Create a schedule",
        responses={200: EXISTING, **responses(400, 409, 422, 503, guard=GUARDED_WRITE)},
    )
    async def create(self, data: NewSchedule, schedules: Schedules) -> Response[ScheduleOut]:
        rec, created = await schedules.create(_spec(data))
        return Response(
            schedule_out(rec),
            status_code=HTTP_201_CREATED if created else 200,
            headers={"Location": f"{self.path}/{rec.id}"},
        )

    @get("/", summary="List schedules, oldest first", responses=responses(400, 422, 503, guard=GUARDED_READ))
    async def list_schedules(
        self,
        schedules: Schedules,
        cursor: Annotated[str | None, QueryParameter(description="`next_cursor` of the last page")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> SchedulePage:
        items, more = await schedules.list(rank_cursor(cursor), limit)
        return SchedulePage([schedule_out(r) for r in items], str(more) if more is not None else None)

    @get("/{schedule_id:str}", summary="A schedule", responses=responses(400, 404, 503, guard=GUARDED_READ))
    async def get_schedule(self, schedule_id: FromPath[str], schedules: Schedules) -> ScheduleOut:
        return schedule_out(await schedules.get(schedule_id))

    @patch(
        "/{schedule_id:str}",
        summary="Change a schedule (paused, task, timing)",
        responses=responses(400, 404, 422, 503, guard=GUARDED_WRITE),
    )
    async def patch_schedule(
        self, schedule_id: FromPath[str], data: ScheduleChange, schedules: Schedules
    ) -> ScheduleOut:
        old = await schedules.get(schedule_id)
        if data.paused is not None and msgspec.structs.replace(data, paused=None) == SchedulePatch():
            return schedule_out(await schedules.pause(schedule_id, bool(data.paused)))
        return schedule_out(await schedules.replace(schedule_id, _spec(_merged(old, data))))

    @delete(
        "/{schedule_id:str}",
        summary="Delete a schedule (its tasks stay)",
        responses=responses(400, 404, 503, guard=GUARDED_WRITE),
    )
    async def delete_schedule(self, schedule_id: FromPath[str], schedules: Schedules) -> None:
        await schedules.delete(schedule_id)
