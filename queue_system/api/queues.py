"""/api/v1/queues: each queue's depth, pause state and oldest waiting task; pause and resume
(docs/queues.md). Thin routes over QueueService; an unknown name is a 404 naming it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK
from prometheus_client.core import GaugeMetricFamily, Metric

from queue_system.api.openapi import GUARDED_READ, GUARDED_WRITE, responses
from queue_system.api.schemas import rfc3339
from queue_system.domain.queues import QueueState
from queue_system.service.clock import now_ms
from queue_system.service.queues import QueueService

Queues = NamedDependency[QueueService]


class QueueOut(msgspec.Struct):
    """`depth` = `queued` (messages waiting for a worker) + `held` (tasks a pause holds);
    `oldest_age_ms`: how long the oldest waiting task has existed (null: none waits)."""

    name: str
    paused: bool
    paused_at: str | None
    depth: int
    queued: int
    held: int
    oldest_created_at: str | None
    oldest_age_ms: int | None


class QueueList(msgspec.Struct):
    items: list[QueueOut]


class ResumeOut(QueueOut):
    released: int = 0  # held tasks this resume dispatched again, oldest first


def queue_out(state: QueueState, now: int) -> QueueOut:
    oldest = state.oldest_created_at
    return QueueOut(
        name=state.name,
        paused=state.paused,
        paused_at=rfc3339(state.paused_at),
        depth=state.depth,
        queued=state.queued,
        held=state.held,
        oldest_created_at=rfc3339(oldest),
        oldest_age_ms=None if oldest is None else max(now - oldest, 0),
    )


def queue_families(states: Sequence[QueueState], now: int) -> Iterator[Metric]:
    """The queues' gauges for GET /metrics (api/metrics.py), read from Redis at each scrape."""
    paused = GaugeMetricFamily("queue_system_queue_paused", "1 while the queue is paused", labels=["queue"])
    depth = GaugeMetricFamily(
        "queue_system_queue_depth", "Tasks waiting on the queue (queued messages + held)", labels=["queue"]
    )
    held = GaugeMetricFamily("queue_system_queue_held", "Tasks a pause holds", labels=["queue"])
    age = GaugeMetricFamily(
        "queue_system_queue_oldest_age_seconds",
        "Age of the queue's oldest waiting task (0 when none waits)",
        labels=["queue"],
    )
    for s in states:
        paused.add_metric([s.name], int(s.paused))
        depth.add_metric([s.name], s.depth)
        held.add_metric([s.name], s.held)
        oldest = s.oldest_created_at
        age.add_metric([s.name], 0 if oldest is None else max(now - oldest, 0) / 1000)
    yield from (paused, depth, held, age)


class QueueController(Controller):
    path = "/api/v1/queues"
    tags = ["queues"]

    @get(
        "/",
        summary="Every queue: depth, paused, oldest waiting task",
        responses=responses(503, guard=GUARDED_READ),
    )
    async def list_queues(self, queues: Queues) -> QueueList:
        states = await queues.list()
        now = now_ms()
        return QueueList([queue_out(s, now) for s in states])

    @get("/{name:str}", summary="One queue", responses=responses(400, 404, 503, guard=GUARDED_READ))
    async def get_queue(self, name: FromPath[str], queues: Queues) -> QueueOut:
        return queue_out(await queues.get(name), now_ms())

    @post(
        "/{name:str}/pause",
        status_code=HTTP_200_OK,
        summary="Pause a queue: its tasks wait, held, until it is resumed (idempotent)",
        description=(
            "Submits are still accepted (201) and wait; attempts under way finish; workers claim "
            "none of its tasks from now on (retries that come due wait too). The pause survives "
            "restarts of workers, the API and Redis."
        ),
        responses=responses(400, 404, 503, guard=GUARDED_WRITE),
    )
    async def pause(self, name: FromPath[str], queues: Queues) -> QueueOut:
        return queue_out(await queues.pause(name), now_ms())

    @post(
        "/{name:str}/resume",
        status_code=HTTP_200_OK,
        summary="Resume a queue: its held tasks are dispatched again, oldest first (idempotent)",
        responses=responses(400, 404, 503, guard=GUARDED_WRITE),
    )
    async def resume(self, name: FromPath[str], queues: Queues) -> ResumeOut:
        state, done = await queues.resume(name)
        out = queue_out(state, now_ms())
        return ResumeOut(**msgspec.structs.asdict(out), released=done.released)
