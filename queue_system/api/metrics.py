"""The API's Prometheus metrics: GET /metrics.

- Requests by route (the path template, never the raw path) and status, and their latency:
  Litestar's Prometheus middleware (`prometheus_config`), prefix `queue_system_api`.
- Tasks submitted by type (`submitted`), submits rejected by reason (`count_rejections`, a
  middleware: it sees every refusal, including those Litestar makes before the handler runs).
- What lives in Redis (tasks by status and type, queue depths, scheduled tasks, the oldest pending
  task's age, live worker processes, webhook destinations): read from Redis at each scrape
  (`StatsCollector`), the same numbers GET /api/v1/stats answers, never a gauge that goes stale.
  With one Redis behind every API instance, any instance answers for all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from litestar import MediaType, Response, get
from litestar.di import NamedDependency
from litestar.plugins.prometheus import PrometheusConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import REGISTRY, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import RedisError

from queue_system.api.schemas import TASKS_PATH
from queue_system.service.health import Readiness, readiness
from queue_system.service.tasks import TaskService

prometheus_config = PrometheusConfig(app_name="queue_system", prefix="queue_system_api", group_path=True)

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


def submitted(task_type: str) -> None:
    _submitted.labels(task_type).inc()


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

    def __init__(self, ready: Readiness, stats: dict[str, Any] | None) -> None:
        self.ready = ready
        self.stats = stats

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
async def metrics(service: NamedDependency[TaskService]) -> Response[bytes]:
    ready = await readiness(service)
    stats = None
    if ready.redis_ok:
        with contextlib.suppress(RedisError):  # Redis went away since: the process metrics still answer
            stats = await service.stats()
    scrape = CollectorRegistry()
    scrape.register(StatsCollector(ready, stats))
    body = generate_latest(REGISTRY) + generate_latest(scrape)
    return Response(body, media_type=MediaType.TEXT, headers={"Content-Type": _CONTENT_TYPE})


_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
