"""The API's GET /metrics and GET /ready: the real app in-process on a real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.config.settings import load_settings
from tests.support.api import app_client
from tests.support.metrics import scrape, value

HOOK = {"url": "http://127.0.0.1:9/hook"}


@pytest.fixture
def client(redis_client: redis.Redis, redis_url: str) -> Iterator[TestClient[Any]]:
    with app_client(redis_url, API_MAX_BODY_BYTES="4096", EGRESS_ALLOW_CIDRS="127.0.0.0/8") as test_client:
        yield test_client


def test_redis_counts_match_the_stats_endpoint(client: TestClient[Any], redis_client: redis.Redis) -> None:
    for i in range(3):
        assert client.post("/api/v1/tasks", json={"url": f"http://127.0.0.1:9/{i}"}).status_code == 201
    assert client.post("/api/v1/tasks", json={**HOOK, "delay": "1h"}).status_code == 201
    cancelled = client.post("/api/v1/tasks", json={**HOOK, "id": "to-cancel", "delay": "1h"}).json()["id"]
    assert client.post(f"/api/v1/tasks/{cancelled}/cancel").status_code == 200
    time.sleep(0.01)  # the oldest pending task is a few ms old: the age is > 0 on both sides

    stats = client.get("/api/v1/stats").json()
    samples = scrape(client)
    for status, n in stats["by_status"].items():
        assert value(samples, "queue_system_tasks", status=status) == n, status
    assert stats["by_status"]["pending"] == 3 and stats["by_status"]["cancelled"] == 1
    for type_, n in stats["by_type"].items():
        assert value(samples, "queue_system_tasks_by_type", type=type_) == n
    for queue, counts in stats["queues"].items():
        for state, n in counts.items():
            assert value(samples, "queue_system_queue_messages", queue=queue, state=state) == n
    assert value(samples, "queue_system_queue_messages", queue="default", state="ready") == 3
    assert value(samples, "queue_system_scheduled_tasks") == stats["delayed"] == 1
    age = value(samples, "queue_system_oldest_pending_age_seconds")
    # Read a moment apart: the scrape's age is the later one, within a second of the stats'.
    assert stats["oldest_pending_age_ms"] / 1000 <= age < stats["oldest_pending_age_ms"] / 1000 + 1
    assert value(samples, "queue_system_redis_up") == 1


def test_submitted_by_type_and_rejected_by_reason(client: TestClient[Any]) -> None:
    before = scrape(client)
    assert client.post("/api/v1/tasks", json=HOOK).status_code == 201
    assert client.post("/api/v1/tasks", json={"type": "echo", "payload": "hi"}).status_code == 201
    assert client.post("/api/v1/tasks", json={"url": "not a url"}).status_code in (400, 422)
    assert client.post("/api/v1/tasks", json={"type": "nope", "payload": {}}).status_code in (400, 404, 422)
    assert client.post("/api/v1/tasks", json={**HOOK, "id": "same"}).status_code == 201
    assert (
        client.post("/api/v1/tasks", json={"url": "http://127.0.0.1:9/other", "id": "same"}).status_code
        == 409
    )
    too_big = client.post("/api/v1/tasks", content=b"{" + b" " * 5000 + b"}")
    assert too_big.status_code == 413
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("queue_system_api_tasks_submitted_total", type="webhook") == 2
    assert delta("queue_system_api_tasks_submitted_total", type="echo") == 1
    assert delta("queue_system_api_tasks_rejected_total", reason="invalid") == 2
    assert delta("queue_system_api_tasks_rejected_total", reason="conflict") == 1
    assert delta("queue_system_api_tasks_rejected_total", reason="too_large") == 1


def test_refusals_at_the_front_door_are_counted_as_responses(
    redis_client: redis.Redis, redis_url: str
) -> None:
    # The key check runs as a middleware inside the two that count: a 401 or a 413 it answers is a
    # response they see, counted like a handler's, and a 5xx counts as an error.
    settings = load_settings({"REDIS_URL": redis_url, "API_KEYS": "k" * 32, "API_MAX_BODY_BYTES": "4096"})
    with TestClient(create_app(settings)) as client:
        before = scrape(client, "k" * 32)
        refused = client.post("/api/v1/tasks", json=HOOK)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        assert refused.headers["content-type"] == "application/problem+json"
        big = client.post("/api/v1/tasks", content=b"{" + b" " * 5000 + b"}", headers={"X-API-Key": "k" * 32})
        assert big.status_code == 413
        after = scrape(client, "k" * 32)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = {"app_name": "queue_system", "method": "POST", "path": "/api/v1/tasks"}
    assert delta("queue_system_api_requests_total", **route, status_code="401") == 1
    assert delta("queue_system_api_requests_total", **route, status_code="413") == 1
    assert delta("queue_system_api_requests_error_total", **route, status_code="401") == 0
    assert delta("queue_system_api_tasks_rejected_total", reason="unauthorized") == 1
    assert delta("queue_system_api_tasks_rejected_total", reason="too_large") == 1
    assert value(after, "queue_system_api_requests_in_progress", **route, status_code="200") == 0


def test_requests_are_counted_by_route_template_not_raw_path(client: TestClient[Any]) -> None:
    task_id = client.post("/api/v1/tasks", json=HOOK).json()["id"]
    assert client.get(f"/api/v1/tasks/{task_id}").status_code == 200
    assert client.get("/api/v1/tasks/no-such-task").status_code == 404
    samples = scrape(client)
    names = {name for name, _ in samples}
    assert "queue_system_api_request_duration_seconds_bucket" in names
    paths = {
        dict(labels).get("path") for name, labels in samples if name == "queue_system_api_requests_total"
    }
    assert "/api/v1/tasks/{task_id}" in paths
    assert not any(task_id in str(labels) for _, labels in samples)  # bounded labels: no ids
    route = {"app_name": "queue_system", "method": "GET", "path": "/api/v1/tasks/{task_id}"}
    assert value(samples, "queue_system_api_requests_total", **route, status_code="200") >= 1
    assert value(samples, "queue_system_api_requests_total", **route, status_code="404") >= 1


def test_ready_reports_redis_and_live_workers(client: TestClient[Any], redis_client: redis.Redis) -> None:
    body = client.get("/ready").json()
    assert body["status"] == "ready" and body["worker_processes"] == 0 and "warning" in body
    now_ms = int(time.time() * 1000)
    redis_client.zadd("qs:dramatiq:__heartbeats__", {"fresh-1": now_ms, "fresh-2": now_ms, "dead": 1})
    body = client.get("/ready").json()
    assert body == {"status": "ready", "redis": "ok", "worker_processes": 2}
    assert value(scrape(client), "queue_system_worker_processes") == 2


def test_ready_and_metrics_when_redis_is_unreachable() -> None:
    settings = load_settings({"REDIS_URL": "redis://127.0.0.1:9/0"})  # nothing listens on port 9
    with TestClient(create_app(settings)) as client:
        response = client.get("/ready")
        assert response.status_code == 503 and response.json()["reason"].startswith("redis:")
        samples = scrape(client)
        assert value(samples, "queue_system_redis_up") == 0
        assert not any(name == "queue_system_tasks" for name, _ in samples)
