"""Routes: thin, each calls one TaskService method (the API never sees the store)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from queue_system.api import submission
from queue_system.api.schemas import (
    TASKS_PATH,
    CreatedTask,
    Stats,
    SubmitTask,
    TaskOut,
    TaskPage,
    decode_cursor,
    encode_cursor,
    task_out,
)
from queue_system.domain.models import TaskQuery, TaskStatus
from queue_system.errors import InvalidInput
from queue_system.service.health import readiness
from queue_system.service.tasks import TaskService

TaskId = FromPath[str]
Service = NamedDependency[TaskService]
Limit = Annotated[int, QueryParameter(ge=1, le=500, description="page size (default 50, max 500)")]
Cursor = Annotated[str | None, QueryParameter(description="`next_cursor` of the previous page")]


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
            "the same `id` with another body is a 409."
        ),
        responses={},
    )
    async def submit(
        self,
        data: JSONBody[SubmitTask],
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
    )
    async def list_tasks(
        self,
        service: Service,
        status: Annotated[list[TaskStatus] | None, QueryParameter(description="repeatable")] = None,
        type: Annotated[str | None, QueryParameter(description="only tasks of this type")] = None,
        queue: Annotated[str | None, QueryParameter(description="only tasks on this queue")] = None,
        created_after: Annotated[datetime | None, QueryParameter(description="RFC 3339, inclusive")] = None,
        created_before: Annotated[datetime | None, QueryParameter(description="RFC 3339, inclusive")] = None,
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> TaskPage:
        query = TaskQuery(
            statuses=tuple(dict.fromkeys(s.value for s in status or ())),
            type=type,
            queue=queue,
            created_after=_ms(created_after, "created_after"),
            created_before=_ms(created_before, "created_before"),
            cursor=decode_cursor(cursor),
            limit=limit,
        )
        page = await service.list(query)
        items = [task_out(t, with_history=False) for t in page.tasks]
        return TaskPage(items=items, next_cursor=encode_cursor(page.next_cursor), limit=limit)

    @get("/{task_id:str}", summary="Get a task with its attempt history")
    async def get_task(self, task_id: TaskId, service: Service) -> TaskOut:
        return task_out(await service.get(task_id), with_history=True)

    @post("/{task_id:str}/cancel", status_code=200, summary="Cancel a pending, scheduled or retrying task")
    async def cancel_task(self, task_id: TaskId, service: Service) -> TaskOut:
        return task_out(await service.cancel(task_id), with_history=True)

    @post(
        "/{task_id:str}/retry",
        status_code=200,
        summary="Run a failed or cancelled task again now",
        description="The attempt history is kept; the new attempt is recorded with trigger `manual`, and the "
        "retry window and retry count start afresh.",
    )
    async def retry_task(self, task_id: TaskId, service: Service) -> TaskOut:
        return task_out(await service.retry(task_id), with_history=True)

    @delete("/{task_id:str}", summary="Delete a task (cancelled first, so it never runs again)")
    async def delete_task(self, task_id: TaskId, service: Service) -> None:
        await service.delete(task_id)


@get("/api/v1/stats", tags=["tasks"], summary="Counts by status and type, queue depths, oldest pending age")
async def stats(service: Service) -> Stats:
    return msgspec.convert(await service.stats(), Stats)


def _ms(value: datetime | None, field: str) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise InvalidInput("needs a time zone (RFC 3339)", field=field, status_code=400)
    return int(value.timestamp() * 1000)


@get("/health", tags=["health"], summary="Liveness: the process answers (no I/O)")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/ready",
    tags=["health"],
    summary="Readiness: Redis answers (503 if not); how many worker processes have a fresh heartbeat",
    responses={},
)
async def ready(service: Service) -> Response[dict[str, object]]:
    state = await readiness(service)
    if not state.redis_ok:
        return Response({"status": "unavailable", "reason": f"redis: {state.error}"}, status_code=503)
    # No live worker does not make the API unready: it still accepts tasks, which wait queued.
    body: dict[str, object] = {"status": "ready", "redis": "ok", "worker_processes": state.workers}
    if not state.workers:
        body["warning"] = "no worker process has a fresh heartbeat: tasks wait until one runs"
    return Response(body, status_code=200)
