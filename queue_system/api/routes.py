"""Routes: thin, each calls one TaskService method (the API never sees the store)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from queue_system.api import submission
from queue_system.api.openapi import GUARDED_READ, GUARDED_WRITE, body_examples, responses
from queue_system.api.schemas import (
    TASKS_PATH,
    CreatedTask,
    Stats,
    SubmitTask,
    TaskOut,
    TaskPage,
    decode_cursor,
    encode_cursor,
    rfc3339,
    task_out,
)
from queue_system.domain.models import TaskQuery, TaskStatus
from queue_system.errors import InvalidInput
from queue_system.service.health import WriteProbe, readiness, worker_processes
from queue_system.service.tasks import TaskService

TaskId = FromPath[str]
Service = NamedDependency[TaskService]
Limit = Annotated[int, QueryParameter(ge=1, le=500, description="page size (default 50, max 500)")]
Cursor = Annotated[str | None, QueryParameter(description="`next_cursor` of the previous page")]
# Taken as text and parsed here: Litestar's own datetime parameters also take a number as a Unix
# time (`created_before=0.5` was accepted as 1970), which RFC 3339 does not allow.
Instant = Annotated[
    str | None,
    QueryParameter(
        format="date-time",
        description="RFC 3339 date-time with a zone (`2030-01-01T12:00:00Z`), inclusive; else 400",
    ),
]
_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})\Z", re.ASCII
)

# The 200 of a create: the same request (same `id` and body) was accepted before.
EXISTING = ResponseSpec(
    data_container=CreatedTask,
    generate_examples=False,
    description="A task with this `id` was created by the same request before: that task, unchanged",
)
NewTask = Annotated[
    SubmitTask,
    body_examples(
        webhook={"url": "https://example.com/hooks/orders", "method": "POST", "body": {"order": 42}},
        typed_form={"type": "echo", "payload": "hello"},
        scheduled={"type": "echo", "payload": "later", "delay": "10m", "queue": "priority"},
    ),
]
SUBMIT_RESPONSES: dict[int, ResponseSpec] = {
    200: EXISTING,
    **responses(400, 409, 413, 422, 503, guard=GUARDED_WRITE),
}


class TaskController(Controller):
    path = TASKS_PATH
    tags = ["tasks"]

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Submit a task",
        description=(
            "Stores the task and enqueues it in one atomic step: a 201 means it is in Redis and queued. "
            "The body is `{type, payload}` or a webhook written out (`{url, method, headers, body}`). "
            "Re-sending a request with the same `id` and body returns the existing task with 200; "
            "the same `id` with another body is a 409. Give either the typed form or the webhook fields, "
            "not both; `delay` and `run_at` exclude each other (422 naming `delay`); `run_at` is RFC 3339 "
            "with a zone, at most 366 days ahead. The payload is checked by its type's rules (422 naming "
            "the field, e.g. `payload.url`); an unknown `type` is a 422 listing the known ones."
        ),
        responses=SUBMIT_RESPONSES,
    )
    async def submit(
        self,
        data: NewTask,
        service: Service,
        idempotency_key: Annotated[
            str | None, HeaderParameter(name="Idempotency-Key", description="same meaning as `id`")
        ] = None,
    ) -> Response[CreatedTask]:
        return await submission.submit(service, data, idempotency_key)

    @get(
        "/",
        summary="List tasks, newest first",
        description="Filter by `status` and `type`; page with `cursor`.",
        responses=responses(400, 422, 503, guard=GUARDED_READ),
    )
    async def list_tasks(
        self,
        service: Service,
        status: Annotated[list[TaskStatus] | None, QueryParameter(description="repeatable")] = None,
        type: Annotated[str | None, QueryParameter(description="only tasks of this type")] = None,
        queue: Annotated[str | None, QueryParameter(description="only tasks on this queue")] = None,
        schedule_id: Annotated[
            str | None, QueryParameter(description="only tasks this schedule created")
        ] = None,
        created_after: Instant = None,
        created_before: Instant = None,
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> TaskPage:
        query = TaskQuery(
            statuses=tuple(dict.fromkeys(s.value for s in status or ())),
            type=type,
            queue=queue,
            schedule_id=schedule_id,
            created_after=_ms(created_after, "created_after"),
            created_before=_ms(created_before, "created_before"),
            cursor=decode_cursor(cursor),
            limit=limit,
        )
        page = await service.list(query)
        items = [task_out(t, with_history=False) for t in page.tasks]
        return TaskPage(items=items, next_cursor=encode_cursor(page.next_cursor), limit=limit)

    @get(
        "/{task_id:str}",
        summary="Get a task with its attempt history",
        responses=responses(400, 404, 405, 503, guard=GUARDED_READ),
    )
    async def get_task(self, task_id: TaskId, service: Service) -> TaskOut:
        return task_out(await service.get(task_id), with_history=True)

    @post(
        "/{task_id:str}/cancel",
        status_code=200,
        summary="Cancel a pending, scheduled or retrying task",
        responses=responses(400, 404, 409, 503, guard=GUARDED_WRITE),
    )
    async def cancel_task(self, task_id: TaskId, service: Service) -> TaskOut:
        return task_out(await service.cancel(task_id), with_history=True)

    @post(
        "/{task_id:str}/retry",
        status_code=200,
        summary="Run a failed or cancelled task again now",
        description="The attempt history is kept; the new attempt is recorded with trigger `manual`, and the "
        "retry window and retry count start afresh.",
        responses=responses(400, 404, 409, 503, guard=GUARDED_WRITE),
    )
    async def retry_task(self, task_id: TaskId, service: Service) -> TaskOut:
        return task_out(await service.retry(task_id), with_history=True)

    @delete(
        "/{task_id:str}",
        summary="Delete a task (cancelled first, so it never runs again)",
        responses=responses(400, 404, 405, 503, guard=GUARDED_WRITE),
    )
    async def delete_task(self, task_id: TaskId, service: Service) -> None:
        await service.delete(task_id)


@get(
    "/api/v1/stats",
    tags=["tasks"],
    summary="Counts by status and type, queue depths, oldest pending age",
    responses=responses(503, guard=GUARDED_READ),
)
async def stats(service: Service) -> Stats:
    return msgspec.convert(await service.stats(), Stats)


class WorkerOut(msgspec.Struct):
    id: str  # Dramatiq's broker id: one per worker process
    last_heartbeat_at: str
    alive: bool  # a heartbeat in the last 10 s


class WorkersOut(msgspec.Struct):
    alive: int
    items: list[WorkerOut]  # freshest heartbeat first


@get(
    "/api/v1/workers",
    tags=["workers"],
    summary="Worker processes and their last heartbeat (every process beats once a second)",
    responses=responses(503, guard=GUARDED_READ),
)
async def workers(service: Service) -> WorkersOut:
    items = [
        WorkerOut(w.id, rfc3339(w.last_heartbeat) or "", w.alive) for w in await worker_processes(service)
    ]
    return WorkersOut(alive=sum(w.alive for w in items), items=items)


def _ms(value: str | None, field: str) -> int | None:
    """RFC 3339 text -> epoch ms; anything else (a bare number, no zone, a 30th of February) is a 400."""
    if value is None:
        return None
    match = _RFC3339.match(value)
    if match is None:
        raise InvalidInput(
            "not an RFC 3339 date-time with a zone (e.g. 2030-01-01T12:00:00Z)", field=field, status_code=400
        )
    day, minutes, seconds, fraction, zone = match.groups()
    # A leap second (:60) is valid RFC 3339; Python has no such second, the next one is as good.
    text = f"{day}T{minutes}:{min(int(seconds), 59):02d}.{(fraction or '0')[:6]}{zone.replace('z', 'Z')}"
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(f"not a valid date-time: {exc}", field=field, status_code=400) from None
    return int(instant.timestamp() * 1000)


@get("/health", tags=["health"], summary="Liveness: the process answers (no I/O)")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/ready",
    tags=["health"],
    summary="Readiness: Redis answers and takes writes (503 if not); how many worker processes have a "
    "fresh heartbeat",
    responses={
        503: ResponseSpec(
            data_container=dict[str, str],
            generate_examples=False,
            description="Redis does not answer, or refuses writes (out of memory, a read-only replica): "
            "`{status: unavailable, redis: unreachable | refuses-writes | storage-error, reason}`",
        )
    },
)
async def ready(service: Service, write_probe: NamedDependency[WriteProbe]) -> Response[dict[str, object]]:
    state = await readiness(service, write_probe)
    if not state.ready:
        refusal: dict[str, object] = {"status": "unavailable", "redis": state.redis}
        refusal["reason"] = f"redis: {state.error}"
        return Response(refusal, status_code=503)
    # No live worker does not make the API unready: it still accepts tasks, which wait queued.
    body: dict[str, object] = {"status": "ready", "redis": "ok", "worker_processes": state.workers}
    if not state.workers:
        body["warning"] = "no worker process has a fresh heartbeat: tasks wait until one runs"
    return Response(body, status_code=200)
