"""The bulk action and operation routes, on the app with a real Redis: 202 with an operation, its
progress as the steps run (driven here by the reconciler's own hook), list, cancel, and problems
that name the field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.config.settings import load_settings
from queue_system.service.clock import now_ms
from queue_system.service.operations import operation_runner
from queue_system.storage.keys import Keys
from tests.bulk_support import Seed, seed_tasks, status_of
from tests.support.api import assert_problem

ENV = {"EGRESS_ALLOW_CIDRS": "127.0.0.0/8", "BULK_RATE": "1000", "BULK_MAX_RATE": "2000"}


@pytest.fixture
def client(redis_client: redis.Redis, redis_url: str) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(load_settings({"REDIS_URL": redis_url, **ENV}))) as test_client:
        yield test_client


def run_worker_steps(redis_client: redis.Redis, redis_url: str) -> None:
    run = operation_runner(redis_client, Keys(), load_settings({"REDIS_URL": redis_url, **ENV}), "w1")
    for _ in range(50):
        if not redis_client.zcard(Keys().ops_running):
            return
        run(now_ms() + 2_000)


def test_retry_by_filter_runs_as_an_operation(
    client: TestClient[Any], redis_client: redis.Redis, redis_url: str
) -> None:
    now = now_ms()
    seeds = [Seed(f"f{i}", "failed", now - 10_000 + i) for i in range(30)]
    seeds += [Seed("other", "failed", now - 5_000, url="http://elsewhere.test:80/")]
    seeds += [Seed("done", "completed", now - 5_000)]
    seed_tasks(redis_client, seeds)
    started = client.post(
        "/api/v1/tasks/actions/retry",
        json={"status": ["failed"], "destination": "http://127.0.0.1:9", "rate": 500},
    )
    assert started.status_code == 202, started.text
    op = started.json()
    assert started.headers["location"] == f"/api/v1/operations/{op['id']}"
    assert op["state"] == "running" and op["action"] == "retry" and op["rate"] == 500
    assert op["filter"] == {"status": ["failed"], "destination": "http://127.0.0.1:9"}
    assert op["total"] == 31 and op["done"] == 0
    run_worker_steps(redis_client, redis_url)
    op = client.get(f"/api/v1/operations/{op['id']}").json()
    assert (op["state"], op["matched"], op["done"], op["skipped"], op["progress"]) == ("done", 30, 30, 0, 1.0)
    assert op["finished_at"] is not None
    assert status_of(redis_client, "other") == "failed" and status_of(redis_client, "f3") == "pending"
    listed = client.get("/api/v1/operations").json()
    assert [o["id"] for o in listed["items"]] == [op["id"]] and listed["next_cursor"] is None


def test_recover_since_is_destination_and_created_after(
    client: TestClient[Any], redis_client: redis.Redis
) -> None:
    now = now_ms()
    seed_tasks(redis_client, [Seed("old", "failed", now - 7_200_000), Seed("new", "failed", now - 60_000)])
    body = {
        "destination": "http://127.0.0.1:9/",
        "created_after": "2000-01-01T00:00:00Z",
        "status": ["failed"],
    }
    started = client.post("/api/v1/tasks/actions/retry", json=body)
    assert started.status_code == 202, started.text
    assert started.json()["total"] == 2


def test_cancel_and_delete_operations(
    client: TestClient[Any], redis_client: redis.Redis, redis_url: str
) -> None:
    now = now_ms()
    seed_tasks(
        redis_client, [Seed("p", "pending", now - 100, queue="priority"), Seed("d", "completed", now - 90)]
    )
    cancel = client.post("/api/v1/tasks/actions/cancel", json={"queue": "priority"}).json()
    delete = client.post("/api/v1/tasks/actions/delete", json={"status": ["completed"]}).json()
    run_worker_steps(redis_client, redis_url)
    assert client.get(f"/api/v1/operations/{cancel['id']}").json()["done"] == 1
    assert client.get(f"/api/v1/operations/{delete['id']}").json()["done"] == 1
    assert status_of(redis_client, "p") == "cancelled" and status_of(redis_client, "d") is None
    assert_problem(client.post(f"/api/v1/operations/{cancel['id']}/cancel"), 409)


def test_a_running_operation_can_be_cancelled(client: TestClient[Any], redis_client: redis.Redis) -> None:
    seed_tasks(redis_client, [Seed("f", "failed", now_ms() - 100)])
    op = client.post("/api/v1/tasks/actions/retry", json={"all": True}).json()
    cancelled = client.post(f"/api/v1/operations/{op['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert status_of(redis_client, "f") == "failed"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 422, "all"),
        ({"rate": 10}, 422, "all"),
        ({"all": True, "status": ["failed"]}, 422, "all"),
        ({"status": []}, 422, "status"),
        ({"status": ["nope"]}, 422, "status[0]"),
        ({"type": ""}, 422, "type"),
        ({"queue": " "}, 422, "queue"),
        ({"destination": "ftp://x"}, 422, "destination"),
        ({"destination": "http://x/path"}, 422, "destination"),
        ({"endpoint": "http://x#bad key"}, 422, "endpoint"),
        ({"destination": "http://x:99999"}, 422, "destination"),
        ({"endpoint": "http://x:port/a"}, 422, "endpoint"),
        ({"status": ["failed"], "rate": 0}, 422, "rate"),
        ({"status": ["failed"], "rate": 2001}, 422, "rate"),
        ({"status": ["failed"], "created_after": "yesterday"}, 400, "created_after"),
        ({"status": ["failed"], "colour": "red"}, 422, None),
    ],
)
def test_bad_filters_are_problems_naming_the_field(
    client: TestClient[Any], body: dict[str, Any], status: int, field: str | None
) -> None:
    response = client.post("/api/v1/tasks/actions/retry", json=body)
    problem = assert_problem(response, status, field)
    if "colour" in body:
        assert "colour" in problem["detail"]
    assert client.get("/api/v1/operations").json()["items"] == []


def test_unknown_action_and_operation_are_404(client: TestClient[Any]) -> None:
    assert client.post("/api/v1/tasks/actions/replay", json={"all": True}).status_code in (404, 405)
    assert_problem(client.get("/api/v1/operations/nope"), 404)
    assert_problem(client.get("/api/v1/operations", params={"cursor": "9" * 30}), 400, "cursor")
    assert_problem(client.post("/api/v1/operations/nope/cancel"), 404)


def test_single_task_retry_still_works(client: TestClient[Any], redis_client: redis.Redis) -> None:
    seed_tasks(redis_client, [Seed("actions", "failed", now_ms() - 10)])
    response = client.post("/api/v1/tasks/actions/retry")
    assert response.status_code in (400, 422)  # the bulk route: a body is required
    assert client.post("/api/v1/tasks/actions/retry", json={"all": True}).status_code == 202


_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=30),
    st.lists(st.text(max_size=10), max_size=3),
    st.sampled_from(["failed", "http://a.test:80/x", "2030-01-01T00:00:00Z"]),
)  # fmt: skip
_fields = st.sampled_from(
    ["status", "type", "queue", "destination", "endpoint", "schedule_id", "created_after", "created_before",
     "all", "rate", "other"]
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.dictionaries(_fields, _values, max_size=4), action=st.sampled_from(["retry", "cancel", "delete"])
)
def test_no_body_is_a_500(client: TestClient[Any], body: dict[str, Any], action: str) -> None:
    response = client.post(f"/api/v1/tasks/actions/{action}", json=body)
    assert response.status_code in (202, 400, 409, 422), (body, response.text)
    if response.status_code != 202:
        assert response.json()["detail"]
