"""The dashboard's schedules pages: the list (next run, last run, a pause/resume toggle) and one
schedule with its last tasks, linking to the task pages. Same conventions as routes.py: htmx
re-fetches the fragment, actions are form POSTs with the CSRF token answered by a 303."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect

from queue_system.api.dashboard.auth import Sessions, Viewer
from queue_system.api.dashboard.web import AnyRequest, form_viewer, is_htmx, page_viewer, render
from queue_system.domain.models import Task, TaskQuery
from queue_system.domain.redaction import shown_payload
from queue_system.domain.schedules import every_text
from queue_system.errors import InvalidInput, ScheduleNotFound
from queue_system.service.schedules import ScheduleRecord, ScheduleService, rank_cursor
from queue_system.service.tasks import TaskService

PAGE_SIZE = 50
ACTIONS = ("pause", "resume", "delete")
LAST_SHOWN = 20  # a schedule keeps its 20 newest task ids


class SignedIn(Protocol):
    """What these pages need of the dashboard's `Board` (routes.py): who is signed in."""

    sessions: Sessions


Service = NamedDependency[TaskService]
Schedules = NamedDependency[ScheduleService]
# routes.py's `Board`, which cannot be named here (routes.py imports this module), nor as the
# Protocol: Litestar validates a dependency against its annotation and cannot check a Protocol.
Dashboard = NamedDependency[Any]
Page = Response[str] | Redirect


@dataclass(frozen=True, slots=True)
class Shown:
    """A schedule as the pages show it: times in ms (the `ts` filter), the task redacted."""

    id: str
    timing: str
    timezone: str | None
    catch_up: str
    overlap: str
    skipped_ticks: int
    paused: bool
    next_run_at: int | None
    last_run_at: int | None
    created_at: int
    task: Any


def shown_task(body: Any) -> Any:
    """A template as written, redacted as a task's payload is: the webhook shorthand carries its
    headers and secret at the top, the typed form inside `payload`."""
    out = shown_payload(body)
    if isinstance(out, dict) and isinstance(out.get("payload"), dict):
        out = {**out, "payload": shown_payload(out["payload"])}
    return out


def shown(rec: ScheduleRecord) -> Shown:
    timing = f"every {every_text(rec.every_ms)}" if rec.every_ms else f"cron {rec.cron}"
    return Shown(
        id=rec.id,
        timing=timing,
        timezone=rec.timezone,
        catch_up=rec.catch_up,
        overlap=rec.overlap,
        skipped_ticks=rec.skipped_ticks,
        paused=rec.paused,
        next_run_at=None if rec.paused else rec.next_run_at,
        last_run_at=rec.last_run_at,
        created_at=rec.created_at,
        task=shown_task(msgspec.json.decode(rec.body)),
    )


def _sessions(board: SignedIn) -> Sessions:
    return board.sessions


@get("/schedules")
async def schedules_page(
    request: AnyRequest, service: Service, schedules: Schedules, dashboard: Dashboard
) -> Page:
    viewer = await page_viewer(request, _sessions(dashboard))
    if not isinstance(viewer, Viewer):
        return viewer
    try:  # a cursor edited by hand: the first page, as for no cursor
        cursor = rank_cursor(request.query_params.get("cursor"))
    except InvalidInput:
        cursor = 0
    items, more = await schedules.list(cursor, PAGE_SIZE)
    context: dict[str, Any] = {
        "schedules": [shown(r) for r in items],
        "cursor": cursor,
        "next_cursor": more,
        "notice": request.query_params.get("notice", ""),
    }
    template = "_schedule_rows.html" if is_htmx(request) else "schedules.html"
    return render(request, template, viewer, **context)


async def _last_tasks(service: TaskService, sid: str) -> list[Task]:
    page = await service.list(TaskQuery(schedule_id=sid, limit=LAST_SHOWN))
    return list(page.tasks)


@get("/schedules/{schedule_id:str}")
async def schedule_detail(
    request: AnyRequest, schedule_id: FromPath[str], service: Service, schedules: Schedules,
    dashboard: Dashboard,
) -> Page:  # fmt: skip
    viewer = await page_viewer(request, _sessions(dashboard))
    if not isinstance(viewer, Viewer):
        return viewer
    try:
        rec = await schedules.get(schedule_id)
    except ScheduleNotFound:
        return render(request, "schedule_missing.html", viewer, status_code=404, schedule_id=schedule_id)
    context: dict[str, Any] = {
        "schedule": shown(rec),
        "tasks": await _last_tasks(service, schedule_id),
        "notice": request.query_params.get("notice", ""),
    }
    template = "_schedule.html" if is_htmx(request) else "schedule.html"
    return render(request, template, viewer, **context)


def _back(form: dict[str, str], sid: str) -> str:
    """Where the toggle was pressed: the list or the schedule's page (never elsewhere)."""
    return "/dashboard/schedules" if form.get("from") == "list" else f"/dashboard/schedules/{sid}"


@post("/schedules/{schedule_id:str}/{action:str}", status_code=303)
async def schedule_action(
    request: AnyRequest, schedule_id: FromPath[str], action: FromPath[str], service: Service,
    schedules: Schedules, dashboard: Dashboard,
) -> Redirect:  # fmt: skip
    _, form = await form_viewer(request, _sessions(dashboard))
    if action not in ACTIONS:
        raise InvalidInput(f"one of {', '.join(ACTIONS)}", field="action", status_code=404)
    try:
        if action == "delete":
            await schedules.delete(schedule_id)
            notice = f"schedule {schedule_id} deleted (its tasks stay)"
            return Redirect("/dashboard/schedules", query_params={"notice": notice}, status_code=303)
        await schedules.pause(schedule_id, action == "pause")
    except ScheduleNotFound:
        notice = f"schedule {schedule_id} is gone"
        return Redirect("/dashboard/schedules", query_params={"notice": notice}, status_code=303)
    notice = f"schedule {schedule_id} {'paused' if action == 'pause' else 'resumed'}"
    return Redirect(_back(form, schedule_id), query_params={"notice": notice}, status_code=303)


HANDLERS = [schedules_page, schedule_detail, schedule_action]
