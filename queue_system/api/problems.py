"""The one place errors become HTTP: RFC 9457 problem details (`application/problem+json`).

Every body has `type`, `title`, `status`, `detail`, `instance` and `request_id` (also the
`X-Request-ID` header: api/request_ids.py); validation problems add `field` (the first culprit) and
`errors` (all of them, each with `field` and `message`).

Redis's errors arrive as redis-py's exceptions (`storage_error_handler`, given storage/failures.py's
`classify` by the composition root, api/app.py: the API imports no storage) or as the StorageError
they were classified into; both are rendered by `_storage_problem`: unreachable
and refusing writes (out of memory, a read-only replica) are 503s with `Retry-After`, each titled
with what is wrong; anything else (a Lua error, WRONGTYPE) is a 500 "storage error" whose detail
is generic, the Redis text going to the log line that carries the request id. Dashboard pages get
the same status as a small HTML page.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import redis
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from loguru import logger

from queue_system.api.request_ids import request_id
from queue_system.api.schemas import task_location
from queue_system.config.field_paths import split_msgspec_error
from queue_system.errors import (
    Conflict,
    InvalidInput,
    LimitReached,
    NotFound,
    QueueSystemError,
    RedisNotReplicated,
    RedisOutOfMemory,
    RedisReadOnly,
    RedisRefusesWrites,
    StorageError,
    StorageUnavailable,
    UnknownTaskType,
)

MEDIA_TYPE = "application/problem+json"


def problem(
    request: Request[Any, Any, Any],
    status: int,
    slug: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    title: str | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    body = {
        "type": f"urn:queue-system:problem:{slug}",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": request_id(request.scope),
        **{k: v for k, v in extra.items() if v is not None},
    }
    return Response(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def on_app_error(request: Request[Any, Any, Any], exc: QueueSystemError) -> Response[dict[str, Any]]:
    if isinstance(exc, UnknownTaskType):
        return problem(
            request,
            422,
            "unknown-type",
            exc.message,
            field="type",
            known_types=exc.known,
            errors=[{"field": "type", "message": exc.message}],
        )
    if isinstance(exc, InvalidInput):
        slug = "invalid-request" if exc.status_code == 400 else "validation"
        if exc.field is None:
            return problem(request, exc.status_code, slug, exc.message)
        errors = [{"field": exc.field, "message": exc.message}]
        detail = f"{exc.field}: {exc.message}"
        return problem(request, exc.status_code, slug, detail, field=exc.field, errors=errors)
    if isinstance(exc, NotFound):
        return problem(request, 404, "not-found", str(exc))
    if isinstance(exc, LimitReached):
        return problem(request, 409, "limit-reached", exc.message, setting=exc.setting, limit=exc.limit)
    if isinstance(exc, Conflict):
        location = task_location(exc.task_id) if exc.task_id else None
        headers = {"Location": location} if location else None
        return problem(request, 409, "conflict", exc.message, headers=headers, location=location)
    if isinstance(exc, StorageError):
        return _storage_problem(request, exc)
    return on_unexpected(request, exc)


def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    if isinstance(exc, ValidationException):
        errors = [_validation_item(item) for item in exc.extra or []] if isinstance(exc.extra, list) else []
        first = errors[0] if errors else {"field": "body", "message": exc.detail}
        status = 400 if "JSON" in (exc.detail or "") or first["field"] == "body" else 422
        detail = f"{first['field']}: {first['message']}" if errors else exc.detail
        return problem(request, status, "validation", detail, field=first["field"], errors=errors or [first])
    status = exc.status_code
    if status == 413:
        return problem(request, 413, "too-large", "request body is larger than API_MAX_BODY_BYTES allows")
    slug = {400: "invalid-request", 404: "not-found", 405: "method-not-allowed"}.get(status, "http-error")
    return problem(request, status, slug, exc.detail or HTTPStatus(status).phrase, headers=exc.headers)


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log = logger.bind(request_id=request_id(request.scope))
    log.opt(exception=exc).error("unhandled error on {} {}", request.method, request.url.path)
    return problem(request, 500, "internal", "internal error; nothing was changed by this request")


def _validation_item(item: Any) -> dict[str, str]:
    if not isinstance(item, dict):
        return {"field": "body", "message": str(item)}
    message = str(item.get("message", "invalid value"))
    key = str(item.get("key") or "")
    path, message = split_msgspec_error(message)
    # Litestar names the whole body "data"; the message may name a field inside the key.
    if key in ("", "data"):
        field = path
    elif path and path != key and not path.startswith(f"{key}."):
        field = f"{key}.{path}"
    else:
        field = key
    return {"field": field or "body", "message": message}


StorageErrorHandler = Callable[[Request[Any, Any, Any], redis.RedisError], Response[Any]]


def storage_error_handler(classify: Callable[[redis.RedisError], StorageError]) -> StorageErrorHandler:
    """The handler of any redis-py error that reached the app: what `classify` says it means, rendered."""

    def on_storage_error(request: Request[Any, Any, Any], exc: redis.RedisError) -> Response[Any]:
        classified = classify(exc)
        classified.__cause__ = exc  # the log line shows where Redis failed
        return _storage_problem(request, classified)

    return on_storage_error


def _storage_problem(request: Request[Any, Any, Any], exc: StorageError) -> Response[Any]:
    log = logger.bind(request_id=request_id(request.scope))
    where = f"{request.method} {request.url.path}"
    if not isinstance(exc, StorageUnavailable):  # a bug or damaged data: the whole story in the log
        log.opt(exception=exc.__cause__ or exc).error("storage error on {}: {}", where, exc.reason)
        detail = (
            "Redis failed this request with a script or data error; it is logged with this "
            "`request_id`: quote it when you report this"
        )
        return _render(request, 500, "storage-error", "Storage error", detail)
    log.warning("redis unavailable on {}: {}", where, exc)
    headers = {"Retry-After": str(exc.retry_after_s)}
    if isinstance(exc, RedisOutOfMemory):
        slug, detail = (
            "storage-full",
            "Redis refuses writes: it is out of memory (maxmemory reached); reads still work. "
            "Try again later with the same `id`",
        )
    elif isinstance(exc, RedisReadOnly):
        slug, detail = (
            "storage-read-only",
            "Redis refuses writes: REDIS_URL reaches a read-only replica (a failover may be under "
            "way); try again later with the same `id`",
        )
    elif isinstance(exc, RedisNotReplicated):
        slug, detail = (
            "storage-not-replicated",
            f"{exc.reason}: REDIS_MIN_REPLICAS asks for more before a 201 (the task may be stored "
            "already); try again with the same `id`, which cannot create a second task",
        )
    elif isinstance(exc, RedisRefusesWrites):
        slug, detail = (
            "storage-refuses-writes",
            "Redis refuses writes (it cannot persist to disk, or too few replicas acknowledge); "
            "try again later with the same `id`",
        )
    else:
        # Unreachable: nothing was stored. Too slow (no reply in 10 s): the write may have landed,
        # so the client is told how to retry safely.
        slug, detail = (
            "storage-unavailable",
            "Redis is unreachable or did not answer; try again with the same `id` so a retry "
            "cannot create a second task",
        )
    return _render(request, 503, slug, exc.summary, detail, headers=headers)


def _render(
    request: Request[Any, Any, Any],
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    if not request.url.path.startswith("/dashboard"):
        return problem(request, status, slug, detail, headers=headers, title=title)
    # A person's browser: a page that says what happened (htmx leaves its target as it was).
    page = _ERROR_PAGE.format(
        title=html.escape(title), detail=html.escape(detail), rid=html.escape(request_id(request.scope))
    )
    return Response(page, status_code=status, media_type=MediaType.HTML, headers=headers)


_ERROR_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} - queue_system</title>
<link rel="stylesheet" href="/dashboard/static/app.css"></head>
<body><main><h1>{title}</h1><p>{detail}</p><p>request id: <code>{rid}</code></p>
<p><a href="/dashboard/">back to the dashboard</a></p></main></body></html>
"""
