"""The one place errors become HTTP: RFC 9457 problem details (`application/problem+json`).

Every body has `type`, `title`, `status`, `detail`, `instance`; validation problems add `field` (the
first culprit) and `errors` (all of them, each with `field` and `message`).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from loguru import logger

from queue_system.api.schemas import task_location
from queue_system.errors import Conflict, InvalidInput, QueueSystemError, TaskNotFound, UnknownTaskType
from queue_system.field_paths import split_msgspec_error

MEDIA_TYPE = "application/problem+json"


def problem(
    request: Request[Any, Any, Any],
    status: int,
    slug: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    body = {
        "type": f"urn:queue-system:problem:{slug}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
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
    if isinstance(exc, TaskNotFound):
        return problem(request, 404, "not-found", str(exc))
    if isinstance(exc, Conflict):
        location = task_location(exc.task_id) if exc.task_id else None
        headers = {"Location": location} if location else None
        return problem(request, 409, "conflict", exc.message, headers=headers, location=location)
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
    logger.opt(exception=exc).error("unhandled error on {} {}", request.method, request.url.path)
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


def on_storage_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    logger.warning("redis unavailable on {} {}: {}", request.method, request.url.path, exc)
    return problem(
        request,
        503,
        "storage-unavailable",
        # Unreachable: nothing was stored. Too slow (no reply in 10 s): the write may have landed,
        # so the client is told how to retry safely.
        "Redis is unreachable or did not answer; try again with the same `id` so a retry cannot "
        "create a second task",
        headers={"Retry-After": "1"},
    )
