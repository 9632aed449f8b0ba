"""API tests: the real app in-process (Litestar's TestClient) on a real Redis; no worker runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.api.schemas import rfc3339
from queue_system.config.settings import load_settings
from tests.support.api import HOOK, app_client, assert_problem


@pytest.fixture
def client(redis_client: redis.Redis, redis_url: str) -> Iterator[TestClient[Any]]:
    # 127.0.0.0/8 opened as `make run` does: HOOK points at a local receiver.
    with app_client(redis_url, API_MAX_BODY_BYTES="4096", EGRESS_ALLOW_CIDRS="127.0.0.0/8") as test_client:
        yield test_client


def test_submit_webhook_shorthand(client: TestClient[Any], redis_client: redis.Redis) -> None:
    r = client.post("/api/v1/tasks", json=HOOK)
    assert r.status_code == 201, r.text
    task = r.json()
    assert r.headers["location"] == f"/api/v1/tasks/{task['id']}"
    # The old system's clients read `task_id` and `message`.
    assert task["task_id"] == task["id"] and task["message"] == "task accepted"
    assert task["type"] == "webhook" and task["status"] == "pending" and task["attempts"] == 0
    assert task["payload"] == HOOK
    assert task["created_at"].endswith("Z")
    # 201 means: stored and enqueued.
    assert redis_client.hget(f"qs:task:{task['id']}", "status") == "pending"
    assert redis_client.llen("qs:dramatiq:default") == 1


def test_submit_typed_form_and_get(client: TestClient[Any]) -> None:
    r = client.post("/api/v1/tasks", json={"type": "webhook", "payload": HOOK})
    assert r.status_code == 201
    got = client.get(r.headers["location"])
    assert got.status_code == 200
    assert got.json()["payload"] == HOOK
    assert got.json()["attempt_history"] == []


def test_json_body_value_is_kept(client: TestClient[Any]) -> None:
    r = client.post("/api/v1/tasks", json={"url": "https://example.test/x", "body": {"a": [1, 2]}})
    assert r.status_code == 201
    assert r.json()["payload"]["body"] == {"a": [1, 2]}
    assert r.json()["payload"]["method"] == "POST"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"method": "POST"}, 422, "url"),
        ({"url": 5}, 422, "url"),
        ({"url": "ftp://example.test/x"}, 422, "url"),
        ({"url": "not a url"}, 422, "url"),
        ({"url": "http://example.test", "method": "FETCH"}, 422, "method"),
        ({"url": "http://example.test", "headers": {"X": 1}}, 422, "headers[...]"),
        ({"url": "http://example.test", "headers": ["X"]}, 422, "headers"),
        ({"url": "http://example.test", "headers": {"Bad Name": "v"}}, 422, "headers.Bad Name"),
        ({"url": "http://example.test", "surprise": 1}, 422, "surprise"),
        ({"type": "teleport", "payload": {}}, 422, "type"),
        ({"type": "webhook", "payload": {"method": "GET"}}, 422, "payload.url"),
        ({"type": "webhook", "payload": {"url": "ftp://x.test"}}, 422, "payload.url"),
        ({"type": "webhook", "payload": {"url": "http://x.test", "method": "FETCH"}}, 422, "payload.method"),
        ({"type": "webhook", "payload": {"url": "http://x", "extra": 1}}, 422, "payload.extra"),
        ({"type": "webhook", "payload": HOOK, "url": "http://x"}, 422, "url"),
        ({"payload": HOOK}, 422, "type"),
        ({"url": "http://example.test", "id": "has space"}, 422, "id"),
        ({"url": "http://example.test", "queue": "nowhere"}, 422, "queue"),
    ],
)
def test_bad_input_is_a_problem_naming_the_field(
    client: TestClient[Any], redis_client: redis.Redis, body: dict[str, Any], status: int, field: str
) -> None:
    assert_problem(client.post("/api/v1/tasks", json=body), status, field)
    assert redis_client.keys("qs:*") == []  # nothing half-written


def test_unknown_type_lists_the_known_ones(client: TestClient[Any]) -> None:
    body = assert_problem(client.post("/api/v1/tasks", json={"type": "teleport", "payload": {}}), 422, "type")
    assert "webhook" in body["known_types"]


@pytest.mark.parametrize("raw", [b"{nope", b"", b"[1, 2]", b'"text"'])
def test_not_a_json_object_is_rejected(client: TestClient[Any], raw: bytes) -> None:
    r = client.post("/api/v1/tasks", content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422), r.text
    assert_problem(r, r.status_code)


def test_oversized_body_is_413(client: TestClient[Any], redis_client: redis.Redis) -> None:
    big = dict(HOOK, body="x" * 5000)
    assert_problem(client.post("/api/v1/tasks", content=json.dumps(big)), 413)
    assert redis_client.keys("qs:*") == []


def test_client_id_same_body_returns_existing_different_body_conflicts(client: TestClient[Any]) -> None:
    first = client.post("/api/v1/tasks", json=dict(HOOK, id="order-42"))
    assert first.status_code == 201
    again = client.post("/api/v1/tasks", json=dict(HOOK, id="order-42"))
    assert again.status_code == 200
    assert again.json()["id"] == "order-42"
    assert again.json()["created_at"] == first.json()["created_at"]
    assert again.json()["task_id"] == "order-42" and again.headers["location"] == "/api/v1/tasks/order-42"
    other = client.post("/api/v1/tasks", json=dict(HOOK, id="order-42", body="different"))
    body = assert_problem(other, 409)
    assert other.headers["location"] == "/api/v1/tasks/order-42"
    assert body["location"] == "/api/v1/tasks/order-42"


def test_get_unknown_is_404_problem(client: TestClient[Any]) -> None:
    assert_problem(client.get("/api/v1/tasks/nope"), 404)
    assert_problem(client.delete("/api/v1/tasks/nope"), 404)


def test_delete_cancels_and_removes(client: TestClient[Any], redis_client: redis.Redis) -> None:
    task_id = client.post("/api/v1/tasks", json=HOOK).json()["id"]
    assert client.delete(f"/api/v1/tasks/{task_id}").status_code == 204
    assert_problem(client.get(f"/api/v1/tasks/{task_id}"), 404)
    assert redis_client.keys("qs:task:*") == []


def test_cancel_pending_then_cancel_again_conflicts(client: TestClient[Any]) -> None:
    task_id = client.post("/api/v1/tasks", json=HOOK).json()["id"]
    r = client.post(f"/api/v1/tasks/{task_id}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert_problem(client.post(f"/api/v1/tasks/{task_id}/cancel"), 409)


def test_list_newest_first_with_filters_and_cursor(client: TestClient[Any]) -> None:
    created = [client.post("/api/v1/tasks", json=HOOK).json() for _ in range(5)]
    # Newest first; tasks created in the same millisecond come by id, descending.
    ids = [t["id"] for t in sorted(created, key=lambda t: (t["created_at"], t["id"]), reverse=True)]
    client.post(f"/api/v1/tasks/{ids[4]}/cancel")
    page1 = client.get("/api/v1/tasks", params={"limit": 2}).json()
    assert [t["id"] for t in page1["items"]] == ids[:2]
    page2 = client.get("/api/v1/tasks", params={"limit": 2, "cursor": page1["next_cursor"]}).json()
    page3 = client.get("/api/v1/tasks", params={"limit": 2, "cursor": page2["next_cursor"]}).json()
    assert [t["id"] for t in page2["items"] + page3["items"]] == ids[2:]
    assert page3["next_cursor"] is None
    cancelled = client.get("/api/v1/tasks", params={"status": "cancelled"}).json()
    assert [t["id"] for t in cancelled["items"]] == [ids[4]]
    assert client.get("/api/v1/tasks", params={"type": "other"}).json()["items"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"status": "done"}, "status"),
        ({"cursor": "!!"}, "cursor"),
    ],
)
def test_list_bad_query_is_a_problem(client: TestClient[Any], params: dict[str, Any], field: str) -> None:
    r = client.get("/api/v1/tasks", params=params)
    assert r.status_code in (400, 422)
    assert_problem(r, r.status_code, field)


def test_health_and_ready(client: TestClient[Any]) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["status"] == "ready" and ready["redis"] == "ok"


def test_ready_is_503_when_redis_is_down() -> None:
    settings = load_settings({"REDIS_URL": "redis://127.0.0.1:1/0", "EGRESS_ALLOW_CIDRS": "127.0.0.0/8"})
    with TestClient(create_app(settings)) as c:
        r = c.get("/ready")
        assert r.status_code == 503
        assert r.json()["status"] == "unavailable" and "redis" in r.json()["reason"]
        # Submitting while Redis is down: a 503 problem, never a 500.
        assert_problem(c.post("/api/v1/tasks", json=HOOK), 503)


def test_openapi_documents_every_route(client: TestClient[Any]) -> None:
    schema = client.get("/schema/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/api/v1/tasks",
        "/api/v1/tasks/{task_id}",
        "/api/v1/tasks/{task_id}/cancel",
        "/health",
        "/ready",
    ):
        assert path in paths
    assert "SubmitTask" in schema["components"]["schemas"]


def test_unknown_route_is_a_404_problem(client: TestClient[Any]) -> None:
    assert_problem(client.get("/api/v1/nothing"), 404)


@pytest.mark.parametrize("ms", [0, 999, 1_000, 1_763_891_307_079, 1_763_891_307_001, 4_102_444_799_999])
def test_timestamps_are_rfc3339_utc_with_milliseconds(ms: int) -> None:
    expected = datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    assert rfc3339(ms) == expected.replace("+00:00", "Z")
    assert rfc3339(None) is None


def test_a_problem_keeps_field_and_message_apart(client: TestClient[Any]) -> None:
    bad = {"type": "webhook", "payload": {"url": "https://example.test/h", "headers": {"X Y": "1"}}}
    body = assert_problem(client.post("/api/v1/tasks", json=bad), 422, "payload.headers.X Y")
    assert body["errors"] == [{"field": "payload.headers.X Y", "message": "not a valid header name"}]
    assert body["detail"] == "payload.headers.X Y: not a valid header name"
    unknown = assert_problem(client.post("/api/v1/tasks", json={"type": "nope", "payload": 1}), 422, "type")
    assert unknown["detail"].startswith("unknown task type 'nope'; known types: ")
