"""The API's Prometheus metrics: GET /metrics.

- Requests by route (the path template, never the raw path) and status, and their latency:
  `http_metrics`, a middleware that keeps the names and labels of Litestar's Prometheus middleware
  (prefix `queue_system_api`, the route template as `path`) and labels each combination once:
  Litestar's calls labels() four times per request, a tenth of the API's CPU per submit.
- Tasks submitted by type (`submitted`), submits rejected by reason (`count_rejections`, a
  middleware: it sees every refusal, including those Litestar makes before the handler runs).
- What lives in Redis (tasks by status and type, queue depths, scheduled tasks, the oldest pending
  task's age, live worker processes, webhook destinations; each queue's paused flag, depth, held
  tasks and oldest waiting age): read from Redis at each scrape
  (`StatsCollector`), the same numbers GET /api/v1/stats answers, never a gauge that goes stale.
  With one Redis behind every API instance, any instance answers for all.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from litestar import MediaType, Response, get
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import RedisError

from queue_system.api.queues import queue_families
from queue_system.api.schemas import TASKS_PATH
from queue_system.domain.queues import QueueState
from queue_system.service.clock import now_ms
from queue_system.service.health import Readiness, readiness
from queue_system.service.queues import QueueService
from queue_system.service.tasks import TaskService

APP_NAME = "queue_system"
_LABELS = ["method", "path", "status_code", "app_name"]
_requests = Counter("queue_system_api_requests_total", "Total requests", _LABELS)
_errors = Counter("queue_system_api_requests_error_total", "Total errors in requests", _LABELS)
_duration = Histogram("queue_system_api_request_duration_seconds", "Request duration, in seconds", _LABELS)
_in_progress = Gauge(
    "queue_system_api_requests_in_progress",
    "Total requests currently in progress",
    _LABELS,
    multiprocess_mode="livesum",
)
# Labelled children, made once per (method, route template[, status]): bounded by the routes.
_live: dict[tuple[str, str], Gauge] = {}
_done: dict[tuple[str, str, int], tuple[Counter, Histogram, Counter | None]] = {}


def _done_children(method: str, path: str, status: int) -> tuple[Counter, Histogram, Counter | None]:
    children = _done.get((method, path, status))
    if children is None:
        labels = (method, path, status, APP_NAME)
        error = _errors.labels(*labels) if status >= 500 else None
        children = _done.setdefault(
            (method, path, status), (_requests.labels(*labels), _duration.labels(*labels), error)
        )
    return children


def http_metrics(app: ASGIApp) -> ASGIApp:
    """Middleware: requests by method, route and status, their duration (to the last body chunk)
    and those in progress (labelled status_code 200, as Litestar's own middleware does)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        method, path = scope["method"], scope["path_template"]
        live = _live.get((method, path))
        if live is None:
            live = _live.setdefault((method, path), _in_progress.labels(method, path, 200, APP_NAME))
        started = time.perf_counter()
        status, duration = 200, 0.0

        async def observed(message: Message) -> None:
            nonlocal status, duration
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                duration = time.perf_counter() - started
            await send(message)

        live.inc()
        try:
            await app(scope, receive, observed)
        finally:
            live.dec()
            requests, durations, errors = _done_children(method, path, status)
            if errors is not None:
                errors.inc()
            requests.inc()
            durations.observe(duration)

    return middleware


_submitted = Counter("queue_system_api_tasks_submitted_total", "Tasks accepted (created), by type", ["type"])
_rejected = Counter(
    "queue_system_api_tasks_rejected_total",
    "Submits refused, by reason (invalid, unauthorized, conflict, too_large, rate_limited, "
    "unavailable, error)",
    ["reason"],
)
# The routes that create tasks: ours and the compatibility ones (api/compat.py).
SUBMIT_PATHS = frozenset({TASKS_PATH, "/tasks", "/enqueue", "/job"})
REASONS = {401: "unauthorized", 403: "unauthorized", 409: "conflict", 413: "too_large", 429: "rate_limited"}


_submitted_by_type: dict[str, Counter] = {}


def submitted(task_type: str, n: int = 1) -> None:
    counter = _submitted_by_type.get(task_type)
    if counter is None:  # (task types are the registered kinds: bounded)
        counter = _submitted_by_type.setdefault(task_type, _submitted.labels(task_type))
    counter.inc(n)


def rejection_reason(status: int) -> str:
    if status in REASONS:
        return REASONS[status]
    if status >= 500:
        return "unavailable" if status == 503 else "error"
    return "invalid"  # 400, 404 (no such kind), 415, 422


def count_rejections(app: ASGIApp) -> ASGIApp:
    """Middleware: a refused submit (status >= 400) counts once, by reason."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "POST" or scope.get("path_template") not in SUBMIT_PATHS:
            await app(scope, receive, send)
            return

        async def observed(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                _rejected.labels(rejection_reason(message["status"])).inc()
            await send(message)

        await app(scope, receive, observed)

    return middleware


class StatsCollector(Collector):
    """Gauges for one scrape, from counts read from Redis just before (`readiness` + `stats`)."""

    def __init__(
        self, ready: Readiness, stats: dict[str, Any] | None, queues: list[QueueState] | None = None
    ) -> None:
        self.ready = ready
        self.stats = stats
        self.queues = queues

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "queue_system_redis_up", "1 when Redis answered this scrape", self.ready.redis_ok
        )
        yield GaugeMetricFamily(
            "queue_system_worker_processes",
            "Worker processes with a Dramatiq heartbeat in the last 10 s",
            self.ready.workers,
        )
        if self.stats is None:
            return
        yield from _families(self.stats)
        if self.queues is not None:
            yield from queue_families(self.queues, now_ms())


def _families(stats: dict[str, Any]) -> Iterator[Metric]:
    by_status = GaugeMetricFamily("queue_system_tasks", "Tasks by status", labels=["status"])
    for status, n in stats["by_status"].items():
        by_status.add_metric([status], n)
    yield by_status
    by_type = GaugeMetricFamily("queue_system_tasks_by_type", "Live tasks by type", labels=["type"])
    for type_, n in stats["by_type"].items():
        by_type.add_metric([type_], n)
    yield by_type
    depth = GaugeMetricFamily(
        "queue_system_queue_messages", "Dramatiq messages by queue (ready, dead)", labels=["queue", "state"]
    )
    for queue, counts in stats["queues"].items():
        for state, n in counts.items():
            depth.add_metric([queue, state], n)
    yield depth
    yield GaugeMetricFamily(
        "queue_system_scheduled_tasks", "Tasks waiting for their time (scheduled, retries)", stats["delayed"]
    )
    age_ms = stats.get("oldest_pending_age_ms")
    yield GaugeMetricFamily(
        "queue_system_oldest_pending_age_seconds",
        "Age of the oldest pending task (0 when none is pending)",
        (age_ms or 0) / 1000,
    )
    # Webhook destinations (known, open, parked), once the stats carry them: every count in
    # stats["destinations"] becomes queue_system_destinations_{name}.
    for name, n in (stats.get("destinations") or {}).items():
        if isinstance(n, int):
            yield GaugeMetricFamily(f"queue_system_destinations_{name}", f"Webhook destinations: {name}", n)


@get("/metrics", tags=["health"], summary="Prometheus metrics", include_in_schema=False)
async def metrics(
    service: NamedDependency[TaskService], queues: NamedDependency[QueueService]
) -> Response[bytes]:
    ready = await readiness(service)
    stats, states = None, None
    if ready.redis_ok:
        with contextlib.suppress(RedisError):  # Redis went away since: the process metrics still answer
            stats = await service.stats()
            states = await queues.list()
    scrape = CollectorRegistry()
    scrape.register(StatsCollector(ready, stats, states))
    body = generate_latest(REGISTRY) + generate_latest(scrape)
    return Response(body, media_type=MediaType.TEXT, headers={"Content-Type": _CONTENT_TYPE})


_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
