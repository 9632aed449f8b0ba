"""The calls of the five systems queue_system replaces, kept working as thin aliases.

Each takes the old request shape and answers with this API's task fields (see the docs'
coming-from.md). New code should use /api/v1.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Response, Router, get, post
from litestar.params import FromPath, QueryParameter

from queue_system.api.openapi import GUARDED_READ, body_examples, responses
from queue_system.api.routes import SUBMIT_RESPONSES, NewTask, Service
from queue_system.api.schemas import CreatedTask, RetryCount, SubmitTask, TaskOut, TaskPage, task_out
from queue_system.api.submission import submit
from queue_system.domain.models import TaskQuery
from queue_system.errors import InvalidInput


class Enqueue(msgspec.Struct, forbid_unknown_fields=True):
    payload: Any
    id: str | None = None
    type: str | None = None
    max_retries: RetryCount | None = None


class Job(msgspec.Struct, forbid_unknown_fields=True):
    job_type: str
    payload: Any = None
    id: str | None = None
    max_retries: RetryCount | None = None


def _infer_type(payload: Any) -> str:
    if isinstance(payload, dict) and "url" in payload:
        return "webhook"
    if isinstance(payload, str):
        return "echo"
    raise InvalidInput("required unless the payload is a webhook object or a string", field="type")


READ_ONE = responses(400, 404, 503, guard=GUARDED_READ)


@post("/tasks", summary="= POST /api/v1/tasks", responses=SUBMIT_RESPONSES)
async def post_tasks(data: NewTask, service: Service) -> Response[CreatedTask]:
    return await submit(service, data)


@post(
    "/enqueue",
    summary="{id, payload, max_retries} -> POST /api/v1/tasks",
    description="Without `type`, a payload object with `url` is a webhook and a string is an `echo`; "
    "any other payload needs `type` (422 naming `type`).",
    responses=SUBMIT_RESPONSES,
)
async def enqueue(
    data: Annotated[
        Enqueue,
        body_examples(text={"payload": "hello"}, webhook={"payload": {"url": "https://example.com/h"}}),
    ],
    service: Service,
) -> Response[CreatedTask]:
    type_ = data.type or _infer_type(data.payload)
    return await submit(
        service, SubmitTask(type=type_, payload=data.payload, id=data.id, max_retries=data.max_retries)
    )


@post("/job", summary="{job_type, payload} -> POST /api/v1/tasks {type, payload}", responses=SUBMIT_RESPONSES)
async def post_job(
    data: Annotated[Job, body_examples(job={"job_type": "echo", "payload": "hello", "max_retries": 3})],
    service: Service,
) -> Response[CreatedTask]:
    job = SubmitTask(type=data.job_type, payload=data.payload, id=data.id, max_retries=data.max_retries)
    return await submit(service, job)


@get(
    "/task",
    summary="?id= -> GET /api/v1/tasks/{id}",
    responses=responses(400, 404, 422, 503, guard=GUARDED_READ),
)
async def get_task_query(id: Annotated[str, QueryParameter(min_length=1)], service: Service) -> TaskOut:
    return task_out(await service.get(id), with_history=True)


@get("/job/{task_id:str}", summary="= GET /api/v1/tasks/{id}", responses=READ_ONE)
async def get_job(task_id: FromPath[str], service: Service) -> TaskOut:
    return task_out(await service.get(task_id), with_history=True)


@get(
    "/jobs",
    summary="= GET /api/v1/tasks (first page, newest first)",
    responses=responses(400, 422, 503, guard=GUARDED_READ),
)
async def get_jobs(service: Service, limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50) -> TaskPage:
    page = await service.list(TaskQuery(limit=limit))
    return TaskPage(
        items=[task_out(t, with_history=False) for t in page.tasks], next_cursor=None, limit=limit
    )


@get("/healthz", summary="= GET /health")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


compat_router = Router(
    path="/",
    route_handlers=[post_tasks, enqueue, post_job, get_task_query, get_job, get_jobs, healthz],
    tags=["compatibility"],
    include_in_schema=True,
)
