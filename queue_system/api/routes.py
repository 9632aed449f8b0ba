"""Routes: thin, each calls one TaskService method."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED
from msgspec import UNSET

from queue_system.api.schemas import (
    WEBHOOK_FIELDS,
    SubmitTask,
    TaskOut,
    TaskPage,
    decode_cursor,
    encode_cursor,
    task_out,
)
from queue_system.domain.models import TaskStatus
from queue_system.errors import InvalidInput
from queue_system.service.tasks import Submission, TaskService
from queue_system.storage.redis_store import AsyncTaskStore

TaskId = FromPath[str]
Service = NamedDependency[TaskService]
Store = NamedDependency[AsyncTaskStore]
Limit = Annotated[int, QueryParameter(ge=1, le=500, description="page size (default 50, max 500)")]
Cursor = Annotated[str | None, QueryParameter(description="`next_cursor` of the previous page")]


def to_submission(data: SubmitTask) -> Submission:
    shorthand = {name: getattr(data, name) for name in WEBHOOK_FIELDS if getattr(data, name) is not None}
    if data.type is None and data.payload is None:
        if "url" not in shorthand:
            raise InvalidInput("url: required (or give `type` and `payload`)", field="url")
        return Submission("webhook", shorthand, data.id, data.queue, payload_prefix="")
    if shorthand:
        first = next(iter(shorthand))
        raise InvalidInput(f"{first}: put webhook fields inside `payload` when `type` is given", field=first)
    if data.type is None:
        raise InvalidInput("type: required when `payload` is given", field="type")
    payload = data.payload if data.payload is not UNSET else None
    return Submission(data.type, payload, data.id, data.queue)


class TaskController(Controller):
    path = "/api/v1/tasks"
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
    async def submit(self, data: JSONBody[SubmitTask], service: Service) -> Response[TaskOut]:
        task, created = await service.submit(to_submission(data))
        return Response(
            task_out(task, with_history=False),
            status_code=201 if created else 200,
            headers={"Location": f"/api/v1/tasks/{task.id}"},
        )

    @get(
        "/",
        summary="List tasks, newest first",
        description="Filter by `status` and `type`; page with `cursor`.",
    )
    async def list_tasks(
        self,
        service: Service,
        status: Annotated[TaskStatus | None, QueryParameter(description="only tasks in this status")] = None,
        type: Annotated[str | None, QueryParameter(description="only tasks of this type")] = None,
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> TaskPage:
        page = await service.list(status=status, type_=type, cursor=decode_cursor(cursor), limit=limit)
        items = [task_out(t, with_history=False) for t in page.tasks]
        return TaskPage(items=items, next_cursor=encode_cursor(page.next_cursor), limit=limit)

    @get("/{task_id:str}", summary="Get a task with its attempt history")
    async def get_task(self, task_id: TaskId, service: Service) -> TaskOut:
        return task_out(await service.get(task_id), with_history=True)

    @post("/{task_id:str}/cancel", status_code=200, summary="Cancel a pending, scheduled or retrying task")
    async def cancel_task(self, task_id: TaskId, service: Service) -> TaskOut:
        return task_out(await service.cancel(task_id), with_history=True)

    @delete("/{task_id:str}", summary="Delete a task (cancelled first, so it never runs again)")
    async def delete_task(self, task_id: TaskId, service: Service) -> None:
        await service.delete(task_id)


@get("/health", tags=["health"], summary="Liveness: the process answers (no I/O)")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/ready", tags=["health"], summary="Readiness: Redis answers a PING", responses={})
async def ready(store: Store, request: Request[Any, Any, Any]) -> Response[dict[str, str]]:
    try:
        await store.ping()
    except Exception as exc:  # any failure to reach Redis means not ready
        return Response({"status": "unavailable", "reason": f"redis: {exc}"}, status_code=503)
    return Response({"status": "ready"}, status_code=200)
