"""The dashboard's bulk retry and its operations page: the bulk button starts a bulk operation
(service/operations.py) for the task list's filters, and /dashboard/operations shows every
operation with a progress bar (htmx refreshes it). `dashboard` is routes.py's Board."""

from __future__ import annotations

from typing import Any

from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect

from queue_system.api.dashboard.auth import Viewer
from queue_system.api.dashboard.web import AnyRequest, Filters, form_viewer, is_htmx, page_viewer, render
from queue_system.api.schemas import rfc3339
from queue_system.domain.models import TaskStatus
from queue_system.domain.operations import BulkAction, OperationState, TaskFilter
from queue_system.errors import Conflict, OperationNotFound
from queue_system.service.operations import OperationService

Operations = NamedDependency[OperationService]
Dashboard = NamedDependency[Any]  # routes.py's Board (which imports this module)
SHOWN = 50  # the newest operations on the page


def failed_filter(filters: Filters) -> tuple[TaskFilter, dict[str, Any]]:
    """The task list's filters (its status aside: failed only), as an operation's filter."""
    query = filters.query(statuses=(TaskStatus.FAILED.value,))
    flt = TaskFilter(
        statuses=query.statuses, type=query.type, queue=query.queue,
        created_after=query.created_after, created_before=query.created_before,
    )  # fmt: skip
    shown: dict[str, Any] = {"status": list(flt.statuses)}
    shown |= {k: v for k, v in (("type", flt.type), ("queue", flt.queue)) if v}
    for name in ("created_after", "created_before"):
        if getattr(flt, name) is not None:
            shown[name] = rfc3339(getattr(flt, name))
    return flt, shown


@post("/bulk-retry", status_code=303)
async def bulk_retry(request: AnyRequest, operations: Operations, dashboard: Dashboard) -> Redirect:
    _, form = await form_viewer(request, dashboard.sessions)
    flt, shown = failed_filter(Filters.parse(form))
    op = await operations.start(BulkAction.RETRY, flt, shown, None)
    plural = "s" if op.total != 1 else ""
    notice = f"bulk retry started: {op.total} failed task{plural} to look at, {op.rate}/s"
    return Redirect("/dashboard/operations", query_params={"notice": notice}, status_code=303)


@get("/operations")
async def operations_page(
    request: AnyRequest, operations: Operations, dashboard: Dashboard
) -> Response[str] | Redirect:
    viewer = await page_viewer(request, dashboard.sessions)
    if not isinstance(viewer, Viewer):
        return viewer
    items, _ = await operations.list(0, SHOWN)
    running = any(op.state is OperationState.RUNNING for op in items)
    template = "_operations.html" if is_htmx(request) else "operations.html"
    notice = request.query_params.get("notice", "")
    return render(request, template, viewer, operations=items, running=running, notice=notice)


@post("/operations/{operation_id:str}/cancel", status_code=303)
async def cancel_operation(
    request: AnyRequest,
    operation_id: FromPath[str],
    operations: Operations,
    dashboard: Dashboard,
) -> Redirect:
    await form_viewer(request, dashboard.sessions)
    try:
        await operations.cancel(operation_id)
        notice = "operation cancelled"
    except (Conflict, OperationNotFound) as exc:
        notice = str(exc)
    return Redirect("/dashboard/operations", query_params={"notice": notice}, status_code=303)
