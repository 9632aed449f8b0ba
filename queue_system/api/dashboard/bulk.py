"""Bulk retry: the failed tasks matching the task list's filters, bounded."""

from __future__ import annotations

from queue_system.api.dashboard.web import Filters
from queue_system.api.schemas import encode_cursor
from queue_system.domain.models import TaskStatus
from queue_system.service.tasks import TaskService

BULK_LIMIT = 10_000  # one click retries at most this many; the confirmation says so
_PAGE = 500


async def failed_matching(service: TaskService, filters: Filters, limit: int = BULK_LIMIT) -> list[str]:
    """Ids of failed tasks matching `filters` (its status filter is ignored: failed only)."""
    ids: list[str] = []
    cursor: str | None = None
    while len(ids) < limit:
        query = filters.query(cursor, limit=_PAGE, statuses=(TaskStatus.FAILED.value,))
        page = await service.list(query)
        ids += [task.id for task in page.tasks]
        cursor = encode_cursor(page.next_cursor)
        if cursor is None:
            break
    return ids[:limit]
