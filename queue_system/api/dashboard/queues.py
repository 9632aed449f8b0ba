"""The dashboard's queue controls: the overview's Queues card (depth, paused, oldest waiting task)
and its pause/resume buttons, a form POST answered with a redirect (api/dashboard/routes.py)."""

from __future__ import annotations

from typing import Any, Protocol

from litestar import post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect

from queue_system.api.dashboard.auth import Sessions
from queue_system.api.dashboard.web import AnyRequest, form_viewer
from queue_system.errors import InvalidInput
from queue_system.service.clock import now_ms
from queue_system.service.queues import QueueService
from queue_system.service.tasks import TaskService

Queues = NamedDependency[QueueService]
ACTIONS = ("pause", "resume")


class HasSessions(Protocol):
    """routes.Board, as this module needs it (importing routes here would be a cycle)."""

    @property
    def sessions(self) -> Sessions: ...


async def cards(queues: QueueService) -> list[dict[str, Any]]:
    """Each queue as the overview's template reads it."""
    now = now_ms()
    return [
        {
            "name": q.name,
            "paused": q.paused,
            "paused_at": q.paused_at,
            "depth": q.depth,
            "held": q.held,
            "oldest_age_s": None if q.oldest_created_at is None else max(now - q.oldest_created_at, 0) / 1000,
        }
        for q in await queues.list()
    ]


@post("/queues/{name:str}/{action:str}", status_code=303)
async def queue_action(
    request: AnyRequest,
    name: FromPath[str],
    action: FromPath[str],
    service: NamedDependency[TaskService],
    queues: Queues,
    dashboard: NamedDependency[Any],  # a HasSessions: Litestar's signature check refuses a Protocol
) -> Redirect:
    board: HasSessions = dashboard
    await form_viewer(request, board.sessions)
    if action not in ACTIONS:
        raise InvalidInput(f"one of {', '.join(ACTIONS)}", field="action", status_code=404)
    if action == "pause":
        await queues.pause(name)
    else:
        await queues.resume(name)
    return Redirect("/dashboard/", status_code=303)
