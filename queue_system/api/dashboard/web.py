"""Rendering and request helpers of the dashboard: templates, the viewer, the task filters."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from litestar import Request, Response
from litestar.enums import MediaType
from litestar.exceptions import PermissionDeniedException
from litestar.response import Redirect

from queue_system.api.dashboard.auth import (
    CSRF_COOKIE,
    CSRF_FIELD,
    Sessions,
    Viewer,
    check_csrf,
    csrf_cookie,
    new_csrf,
)
from queue_system.api.schemas import decode_cursor
from queue_system.domain.models import TaskQuery, TaskStatus
from queue_system.domain.queues import QUEUES
from queue_system.domain.redaction import shown_payload
from queue_system.domain.words import duration
from queue_system.errors import InvalidInput

AnyRequest = Request[Any, Any, Any]
HERE = Path(__file__).parent
PAGE_SIZE = 50
FINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})
STOP_POLLING = 286  # htmx: stop polling the element that asked


def _ts(ms: int | None) -> str:
    if ms is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def _pretty(value: Any) -> str:
    return json.dumps(shown_payload(value), indent=2, ensure_ascii=False, default=str)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value is escaped unless a template says otherwise
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ts"] = _ts
    env.filters["pretty"] = _pretty
    env.filters["duration"] = duration  # 250 -> "250 ms", 30_012 -> "30 s", as the API words say it
    env.globals["STATUSES"] = [s.value for s in TaskStatus]
    env.globals["QUEUES"] = QUEUES
    env.globals["CSRF_FIELD"] = CSRF_FIELD
    env.globals["FINAL"] = FINAL
    return env


TEMPLATES = _environment()


def render(
    request: AnyRequest, template: str, viewer: Viewer, status_code: int = 200, **context: Any
) -> Response[str]:
    """A page (or an htmx fragment) for `viewer`; sets the double-submit CSRF cookie when needed."""
    html = TEMPLATES.get_template(template).render(viewer=viewer, path=request.url.path, **context)
    response: Response[str] = Response(html, media_type=MediaType.HTML, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    if not viewer.auth_enabled and request.cookies.get(CSRF_COOKIE) != viewer.csrf:
        response.set_cookie(csrf_cookie(viewer.csrf))
    return response


def is_htmx(request: AnyRequest) -> bool:
    return request.headers.get("hx-request") == "true"


async def page_viewer(request: AnyRequest, sessions: Sessions) -> Viewer | Redirect | Response[str]:
    """The viewer of a GET page, or the way to sign-in: a redirect, or for an htmx refresh (its
    XHR would follow a redirect and put the sign-in form inside the page) `HX-Redirect`."""
    viewer = await sessions.viewer(request)
    if viewer is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if is_htmx(request):
            login = "/dashboard/login?" + urlencode({"next": target})
            return Response("", media_type=MediaType.HTML, headers={"HX-Redirect": login})
        return Redirect("/dashboard/login", query_params={"next": target})
    if not viewer.auth_enabled and not viewer.csrf:
        return Viewer(viewer.role, new_csrf(), auth_enabled=False)
    return viewer


async def form_viewer(
    request: AnyRequest, sessions: Sessions, *, write: bool = True
) -> tuple[Viewer, dict[str, str]]:
    """The viewer of a POST, checked: signed in, CSRF token right, a write key (if `write`)."""
    viewer = await sessions.viewer(request)
    if viewer is None:
        raise PermissionDeniedException("sign in first")
    form = dict((await request.form()).items())
    check_csrf(viewer.csrf, form.get(CSRF_FIELD))
    if write and not viewer.can_write:
        raise PermissionDeniedException("this key is read-only")
    return viewer, {k: str(v) for k, v in form.items()}


@dataclass(frozen=True, slots=True)
class Filters:
    """The task list's filters, as they appear in the URL (shareable)."""

    statuses: tuple[str, ...] = ()
    type: str = ""
    queue: str = ""
    created_after: str = ""
    created_before: str = ""

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> Filters:
        def one(name: str) -> str:
            value = params.get(name)
            return str(value).strip() if value else ""

        getall = getattr(params, "getall", None)
        raw = getall("status", []) if getall else ([params["status"]] if params.get("status") else [])
        statuses = tuple(dict.fromkeys(s for s in raw if s))
        for status in statuses:
            if status not in {s.value for s in TaskStatus}:
                raise InvalidInput(f"unknown status {status!r}", field="status", status_code=400)
        return cls(statuses, one("type"), one("queue"), one("created_after"), one("created_before"))

    def query(
        self, cursor: str | None = None, limit: int = PAGE_SIZE, statuses: tuple[str, ...] | None = None
    ) -> TaskQuery:
        return TaskQuery(
            statuses=self.statuses if statuses is None else statuses,
            type=self.type or None,
            queue=self.queue or None,
            created_after=_ms(self.created_after, "created_after"),
            created_before=_ms(self.created_before, "created_before"),
            cursor=decode_cursor(cursor),
            limit=limit,
        )

    def params(self, **extra: str) -> list[tuple[str, str]]:
        pairs = [("status", s) for s in self.statuses]
        pairs += [(k, v) for k, v in self._singles().items() if v]
        pairs += [(k, v) for k, v in extra.items() if v]
        return pairs

    def _singles(self) -> dict[str, str]:
        return {
            "type": self.type,
            "queue": self.queue,
            "created_after": self.created_after,
            "created_before": self.created_before,
        }

    def url(self, path: str = "/dashboard/tasks", **extra: str) -> str:
        encoded = urlencode(self.params(**extra))
        return f"{path}?{encoded}" if encoded else path


def _ms(text: str, field: str) -> int | None:
    """`2026-11-24T10:00` (a datetime-local input, read as UTC) or RFC 3339 -> epoch ms."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            "not a date and time (YYYY-MM-DDTHH:MM, UTC)", field=field, status_code=400
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)
