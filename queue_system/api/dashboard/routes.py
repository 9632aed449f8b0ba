"""The dashboard at /dashboard: `dashboard_router(keyring)` is registered by api/app.py.

Pages are rendered on the server (Jinja); htmx re-fetches lists and counters every few seconds
(a request with `HX-Request: true` gets the fragment only). Actions are plain form POSTs with a CSRF
token, answered with a redirect (303), so they work without JavaScript too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Response, Router, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from queue_system.api.auth import AccessRefused
from queue_system.api.dashboard import data
from queue_system.api.dashboard.auth import (
    COOKIE_PATH,
    CSRF_COOKIE,
    CSRF_FIELD,
    SESSION_COOKIE,
    Sessions,
    Viewer,
    check_csrf,
    new_csrf,
)
from queue_system.api.dashboard.bulk import BULK_LIMIT, failed_matching
from queue_system.api.dashboard.operations import bulk_retry, cancel_operation, operations_page
from queue_system.api.dashboard.queues import Queues, cards, queue_action
from queue_system.api.dashboard.schedules import HANDLERS as SCHEDULE_PAGES
from queue_system.api.dashboard.web import (
    FINAL,
    HERE,
    STOP_POLLING,
    AnyRequest,
    Filters,
    form_viewer,
    is_htmx,
    page_viewer,
    render,
)
from queue_system.api.keys import Role
from queue_system.api.schemas import encode_cursor
from queue_system.domain.redaction import shown_task
from queue_system.errors import Conflict, InvalidInput, TaskNotFound
from queue_system.service.inbox import DevInbox
from queue_system.service.mailbox import Mailbox
from queue_system.service.tasks import TaskService

Service = NamedDependency[TaskService]
Page = Response[str] | Redirect
ACTIONS = ("retry", "cancel", "delete")


@dataclass(frozen=True, slots=True)
class Board:
    """What every dashboard handler needs besides the task service (a router dependency)."""

    sessions: Sessions
    inbox: bool = False  # the development inbox is served (DEV_INBOX)


Dashboard = NamedDependency[Board]


def dashboard_router(sessions: Sessions, *, inbox: bool = False) -> Router:
    """`sessions` with no keyring: authentication off (development): every page says so. The
    mailbox and inbox pages take the app's `mailbox` and `dev_inbox` dependencies (api/app.py)."""
    board = Board(sessions, inbox)
    static = create_static_files_router(
        path="/static", directories=[HERE / "static"], name="dashboard-static"
    )
    return Router(
        path="/dashboard",
        route_handlers=[
            overview,
            series,
            tasks,
            task_detail,
            task_action,
            bulk_confirm,
            bulk_retry,
            queue_action,
            operations_page,
            cancel_operation,
            mailbox_page,
            inbox_page,
            *SCHEDULE_PAGES,
            login_page,
            login,
            logout,
            static,
        ],
        include_in_schema=False,
        dependencies={"dashboard": Provide(lambda: board, sync_to_thread=False)},
    )


def _safe_next(value: str | None) -> str:
    """Only a path of the dashboard: never an open redirect."""
    if value and value.startswith("/dashboard") and not value.startswith("//"):
        return value
    return "/dashboard/"


@get("/")
async def overview(request: AnyRequest, service: Service, dashboard: Dashboard, queues: Queues) -> Page:
    viewer = await page_viewer(request, dashboard.sessions)
    if not isinstance(viewer, Viewer):
        return viewer
    points = await data.series(service)
    context: dict[str, Any] = {
        "stats": await service.stats(),
        "totals": data.totals(points),
        "workers": await data.workers(service),
        "destinations": await data.destinations(service),
        "queues": await cards(queues),
    }
    template = "_overview.html" if is_htmx(request) else "overview.html"
    return render(request, template, viewer, **context)


@get("/series.json")
async def series(
    request: AnyRequest, service: Service, dashboard: Dashboard
) -> Response[dict[str, list[int]]] | Response[str] | Redirect:
    viewer = await page_viewer(request, dashboard.sessions)
    if not isinstance(viewer, Viewer):
        return viewer
    return Response(await data.series(service), headers={"Cache-Control": "no-store"})


@get("/tasks")
async def tasks(request: AnyRequest, service: Service, dashboard: Dashboard) -> Page:
    viewer = await page_viewer(request, dashboard.sessions)
    if not isinstance(viewer, Viewer):
        return viewer
    filters = Filters.parse(request.query_params)
    cursor = request.query_params.get("cursor") or None
    page = await service.list(filters.query(cursor))
    next_cursor = encode_cursor(page.next_cursor)
    context: dict[str, Any] = {
        "filters": filters,
        "tasks": [shown_task(t) for t in page.tasks],  # secrets redacted (domain/redaction.py)
        "cursor": cursor,
        "next_url": filters.url(cursor=next_cursor) if next_cursor else None,
        "types": service.registry.names(),
        "notice": request.query_params.get("notice", ""),
    }
    template = "_task_rows.html" if is_htmx(request) else "tasks.html"
    return render(request, template, viewer, **context)


@get("/tasks/{task_id:str}")
async def task_detail(
    request: AnyRequest, task_id: FromPath[str], service: Service, dashboard: Dashboard
) -> Page:
    viewer = await page_viewer(request, dashboard.sessions)
    if not isinstance(viewer, Viewer):
        return viewer
    try:
        task = await service.get(task_id)
    except TaskNotFound:
        return render(request, "missing.html", viewer, status_code=404, task_id=task_id)
    context: dict[str, Any] = {"task": shown_task(task), "notice": request.query_params.get("notice", "")}
    if is_htmx(request):
        status = STOP_POLLING if task.status in FINAL else 200
        return render(request, "_task.html", viewer, status_code=status, **context)
    return render(request, "task.html", viewer, **context)


@post("/tasks/{task_id:str}/{action:str}", status_code=303)
async def task_action(
    request: AnyRequest, task_id: FromPath[str], action: FromPath[str], service: Service, dashboard: Dashboard
) -> Redirect:
    await form_viewer(request, dashboard.sessions)
    if action not in ACTIONS:
        raise InvalidInput(f"one of {', '.join(ACTIONS)}", field="action", status_code=404)
    try:
        if action == "retry":
            await service.retry(task_id)
        elif action == "cancel":
            await service.cancel(task_id)
        else:
            await service.delete(task_id)
            return Redirect(
                "/dashboard/tasks", query_params={"notice": f"task {task_id} deleted"}, status_code=303
            )
    except Conflict as exc:
        return Redirect(f"/dashboard/tasks/{task_id}", query_params={"notice": str(exc)}, status_code=303)
    notice = "retry started" if action == "retry" else "task cancelled"
    return Redirect(f"/dashboard/tasks/{task_id}", query_params={"notice": notice}, status_code=303)


@get("/bulk-retry")
async def bulk_confirm(request: AnyRequest, service: Service, dashboard: Dashboard) -> Page:
    viewer = await page_viewer(request, dashboard.sessions)
    if not isinstance(viewer, Viewer):
        return viewer
    filters = Filters.parse(request.query_params)
    ids = await failed_matching(service, filters)
    context: dict[str, Any] = {"filters": filters, "count": len(ids), "limit": BULK_LIMIT}
    return render(request, "bulk.html", viewer, **context)


@get("/mailbox")
async def mailbox_page(request: AnyRequest, mailbox: NamedDependency[Mailbox], dashboard: Dashboard) -> Page:
    viewer = await page_viewer(request, dashboard.sessions)
    if not isinstance(viewer, Viewer):
        return viewer
    messages = await mailbox.read()
    template = "_mailbox.html" if is_htmx(request) else "mailbox.html"
    return render(request, template, viewer, messages=messages)


INBOX_SHOWN = 10  # latest requests per inbox on the page


@get("/inbox")
async def inbox_page(request: AnyRequest, dev_inbox: NamedDependency[DevInbox], dashboard: Dashboard) -> Page:
    viewer = await page_viewer(request, dashboard.sessions)
    if not isinstance(viewer, Viewer):
        return viewer
    boxes = []
    if dashboard.inbox:
        for box in await dev_inbox.inboxes():
            boxes.append((box, await dev_inbox.requests(box.name, INBOX_SHOWN)))
    template = "_inbox.html" if is_htmx(request) else "inbox.html"
    return render(request, template, viewer, inboxes=boxes, inbox_on=dashboard.inbox)


@get("/login")
async def login_page(request: AnyRequest, dashboard: Dashboard) -> Page:
    return _login(request, dashboard, error="", status_code=200)


def _login(request: AnyRequest, dashboard: Board, error: str, status_code: int) -> Response[str]:
    viewer = Viewer(Role.READ, request.cookies.get(CSRF_COOKIE) or new_csrf(), auth_enabled=False)
    next_url = _safe_next(request.query_params.get("next"))
    return render(
        request,
        "login.html",
        viewer,
        status_code=status_code,
        error=error,
        next_url=next_url,
        auth_on=dashboard.sessions.enabled,
    )


@post("/login", status_code=303)
async def login(request: AnyRequest, dashboard: Dashboard) -> Page:
    form = dict((await request.form()).items())
    check_csrf(request.cookies.get("qs_dashboard_csrf", ""), str(form.get(CSRF_FIELD) or ""))
    key = str(form.get("key") or "")
    try:
        signed = await dashboard.sessions.throttled_sign_in(request, key)
    except AccessRefused as locked:
        wait = (locked.headers or {}).get("Retry-After", "60")
        page = _login(request, dashboard, f"Too many wrong keys: try again in {wait} s.", status_code=429)
        page.headers["Retry-After"] = wait
        return page
    if signed is None:
        return _login(request, dashboard, "That key is not valid.", status_code=401)
    _, cookie = signed
    response = Redirect(_safe_next(str(form.get("next") or "")), status_code=303)
    response.set_cookie(cookie)
    return response


@post("/logout", status_code=303)
async def logout(request: AnyRequest, dashboard: Dashboard) -> Redirect:
    viewer, _ = await form_viewer(request, dashboard.sessions, write=False)
    await dashboard.sessions.sign_out(viewer)
    response = Redirect("/dashboard/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response
