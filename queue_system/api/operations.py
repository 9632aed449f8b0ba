"""Bulk actions by filter (docs/bulk.md): `POST /api/v1/tasks/actions/{retry|cancel|delete}` starts an
operation (202), `/api/v1/operations` reads, lists and cancels them. Thin routes over OperationService.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import Body, FromPath, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED

from queue_system.api.openapi import GUARDED_READ, GUARDED_WRITE, responses
from queue_system.api.routes import _ms
from queue_system.api.schemas import rfc3339
from queue_system.domain.destinations import ENDPOINT_KEY, ENDPOINT_KEY_RULE, Destination
from queue_system.domain.models import TaskStatus
from queue_system.domain.operations import BulkAction, Operation, TaskFilter
from queue_system.errors import InvalidInput
from queue_system.service.operations import OperationService

Operations = NamedDependency[OperationService]
OPERATIONS_PATH = "/api/v1/operations"


class BulkIn(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The filters of `GET /api/v1/tasks` (ANDed), at least one, or `all: true` alone; `rate`: tasks
    per second at most (default BULK_RATE, at most BULK_MAX_RATE). `destination` is a host
    (`https://hooks.example.com`), `endpoint` a URL without its query (or `scheme://host:port#key`);
    `created_after`/`created_before`: RFC 3339, inclusive."""

    status: list[TaskStatus] | None = None
    type: str | None = None
    queue: str | None = None
    destination: str | None = None
    endpoint: str | None = None
    schedule_id: str | None = None
    created_after: str | None = None
    created_before: str | None = None
    all: bool = False
    rate: int | None = None


class OperationOut(msgspec.Struct):
    id: str
    action: str
    filter: dict[str, Any]
    state: str  # running | done | failed | cancelled
    rate: int
    total: int  # tasks in the filter's index range when it started (an upper bound of matched)
    examined: int
    matched: int
    done: int
    failed: int
    skipped: int  # their status no longer allowed the action
    progress: float  # 0..1
    created_at: str
    updated_at: str
    finished_at: str | None
    error: str | None = None  # why it failed (state `failed`)


class OperationPage(msgspec.Struct):
    items: list[OperationOut]
    next_cursor: str | None


def operation_out(op: Operation) -> OperationOut:
    return OperationOut(
        id=op.id, action=op.action.value, filter=dict(op.filter), state=op.state.value, rate=op.rate,
        total=op.total, examined=op.examined, matched=op.matched, done=op.done, failed=op.failed,
        skipped=op.skipped, progress=round(op.progress, 4), created_at=rfc3339(op.created_at) or "",
        updated_at=rfc3339(op.updated_at) or "", finished_at=rfc3339(op.finished_at), error=op.error,
    )  # fmt: skip


def _url(value: str, field: str) -> Destination:
    try:
        return Destination.of_url(value)
    except ValueError as exc:  # a port that is no number, or out of range
        raise InvalidInput(f"not a URL: {exc}", field=field) from None


def _host(value: str) -> str:
    where = _url(value, "destination")
    if where.scheme not in ("http", "https") or not where.host:
        raise InvalidInput("an http(s) URL: `https://hooks.example.com`", field="destination")
    if where.path != "/" or "?" in value or "#" in value:
        raise InvalidInput("a host alone (for one URL, use `endpoint`)", field="destination")
    return str(where)


def _endpoint(value: str) -> str:
    base, sep, key = value.partition("#")
    where = _url(base, "endpoint")
    if where.scheme not in ("http", "https") or not where.host:
        raise InvalidInput("an http(s) URL, or `scheme://host:port#key`", field="endpoint")
    if sep:
        if not ENDPOINT_KEY.fullmatch(key):
            raise InvalidInput(f"the key after `#`: {ENDPOINT_KEY_RULE}", field="endpoint")
        return f"{where.host_only()}#{key}"
    return where.endpoint


def _text(name: str, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise InvalidInput("empty: leave it out to not filter by it", field=name)
    return value


def to_filter(data: BulkIn) -> tuple[TaskFilter, dict[str, Any]]:
    """-> the filter, and the filter as the operation shows it back (normalised)."""
    if data.status is not None and not data.status:
        raise InvalidInput("empty: leave it out, or name at least one status", field="status")
    for name in ("type", "queue", "destination", "endpoint", "schedule_id"):
        _text(name, getattr(data, name))
    flt = TaskFilter(
        statuses=tuple(dict.fromkeys(s.value for s in data.status or ())),
        type=data.type,
        queue=data.queue,
        destination=_host(data.destination) if data.destination else None,
        endpoint=_endpoint(data.endpoint) if data.endpoint else None,
        schedule_id=data.schedule_id,
        created_after=_ms(data.created_after, "created_after"),
        created_before=_ms(data.created_before, "created_before"),
        all=data.all,
    )
    shown: dict[str, Any] = {"status": list(flt.statuses)} if flt.statuses else {}
    for name in ("type", "queue", "destination", "endpoint", "schedule_id"):
        if getattr(flt, name):
            shown[name] = getattr(flt, name)
    for name in ("created_after", "created_before"):
        if getattr(flt, name) is not None:
            shown[name] = rfc3339(getattr(flt, name))
    if flt.all:
        shown["all"] = True
    return flt, shown


BulkBody = Annotated[BulkIn, Body(description="which tasks (the list's filters), and how fast")]
_ACTED_ON = {
    BulkAction.RETRY: "failed and cancelled tasks run again (a manual attempt each)",
    BulkAction.CANCEL: "waiting tasks (pending, scheduled, retrying) will not run",
    BulkAction.DELETE: "every matching task is removed (cancelled first when it could still run)",
}


def _bulk_route(action: BulkAction) -> Any:
    async def start(data: BulkBody, operations: Operations) -> Response[OperationOut]:
        flt, shown = to_filter(data)
        op = await operations.start(action, flt, shown, data.rate)
        headers = {"Location": f"{OPERATIONS_PATH}/{op.id}"}
        return Response(operation_out(op), status_code=HTTP_202_ACCEPTED, headers=headers)

    return post(
        f"/api/v1/tasks/actions/{action.value}",
        status_code=HTTP_202_ACCEPTED,
        tags=["operations"],
        name=f"bulk-{action.value}",
        operation_id=f"bulk{action.value.title()}",
        summary=f"Bulk {action.value}: every task a filter matches, as a background operation",
        description=f"{_ACTED_ON[action]}; the others count as `skipped`. Answers 202 with the operation "
        "(`Location: /api/v1/operations/{id}`); the workers run it in bounded steps at `rate` tasks per "
        "second, resuming after a crash. Filter by `destination` and `created_after` to recover a "
        "destination since an outage.",
        responses=responses(400, 409, 422, 503, guard=GUARDED_WRITE),
    )(start)


BULK_ROUTES = [_bulk_route(action) for action in BulkAction]


class OperationController(Controller):
    path = OPERATIONS_PATH
    tags = ["operations"]

    @get(
        "/",
        summary="List bulk operations, newest first",
        responses=responses(400, 422, 503, guard=GUARDED_READ),
    )
    async def list_operations(
        self,
        operations: Operations,
        cursor: Annotated[str | None, QueryParameter(description="`next_cursor` of the last page")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> OperationPage:
        if cursor is not None and not (cursor.isdigit() and len(cursor) <= 9):
            raise InvalidInput("not a cursor this API returned", field="cursor", status_code=400)
        items, more = await operations.list(int(cursor or 0), limit)
        return OperationPage([operation_out(o) for o in items], str(more) if more is not None else None)

    @get(
        "/{operation_id:str}",
        summary="A bulk operation and its progress",
        responses=responses(400, 404, 503, guard=GUARDED_READ),
    )
    async def get_operation(self, operation_id: FromPath[str], operations: Operations) -> OperationOut:
        return operation_out(await operations.get(operation_id))

    @post(
        "/{operation_id:str}/cancel",
        status_code=200,
        summary="Stop a running bulk operation (what it did stays done)",
        responses=responses(400, 404, 409, 503, guard=GUARDED_WRITE),
    )
    async def cancel_operation(self, operation_id: FromPath[str], operations: Operations) -> OperationOut:
        return operation_out(await operations.cancel(operation_id))
