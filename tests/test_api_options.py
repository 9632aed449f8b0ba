"""Per-task options, manual retry, filters and stats: the real app in-process on a real Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from litestar.testing import AsyncTestClient, TestClient

from queue_system.api.app import create_app
from queue_system.config.settings import load_settings
from queue_system.domain.models import Attempt, AttemptResult, Outcome, TaskStatus
from queue_system.domain.retry import Decision
from queue_system.storage.types import Claim
from queue_system.storage.worker_store import RedisTaskStore
from tests.support.api import HOOK, assert_problem


@pytest.fixture
def client(redis_client: redis.Redis, redis_url: str) -> Iterator[TestClient[Any]]:
    with TestClient(
        create_app(load_settings({"REDIS_URL": redis_url, "EGRESS_ALLOW_CIDRS": "127.0.0.0/8"}))
    ) as test_client:
        yield test_client


def messages(r: redis.Redis, queue: str) -> list[dict[str, Any]]:
    ids: list[str] = r.lrange(f"qs:dramatiq:{queue}", 0, -1)  # type: ignore[assignment]
    return [json.loads(r.hget(f"qs:dramatiq:{queue}.msgs", i)) for i in ids]  # type: ignore[arg-type]


def test_idempotency_key_header(client: TestClient[Any]) -> None:
    first = client.post("/api/v1/tasks", json=HOOK, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201
    assert first.json()["id"] == "k-1"
    assert client.post("/api/v1/tasks", json=HOOK, headers={"Idempotency-Key": "k-1"}).status_code == 200
    other = client.post("/api/v1/tasks", json=dict(HOOK, body="x"), headers={"Idempotency-Key": "k-1"})
    assert_problem(other, 409)
    mismatch = client.post("/api/v1/tasks", json=dict(HOOK, id="a"), headers={"Idempotency-Key": "b"})
    assert_problem(mismatch, 422, "Idempotency-Key")


def test_parallel_identical_posts_make_one_task(redis_client: redis.Redis, redis_url: str) -> None:
    async def go() -> list[int]:
        app = create_app(load_settings({"REDIS_URL": redis_url, "EGRESS_ALLOW_CIDRS": "127.0.0.0/8"}))
        async with AsyncTestClient(app) as c:
            responses = await asyncio.gather(
                *(c.post("/api/v1/tasks", json=dict(HOOK, id="race-1")) for _ in range(10))
            )
            return sorted(r.status_code for r in responses)

    assert asyncio.run(go()) == [200] * 9 + [201]
    assert redis_client.llen("qs:dramatiq:default") == 1


def test_delay_schedules_without_enqueueing(client: TestClient[Any], redis_client: redis.Redis) -> None:
    r = client.post("/api/v1/tasks", json=dict(HOOK, delay="30s"))
    assert r.status_code == 201
    task = r.json()
    assert task["status"] == "scheduled"
    due = datetime.fromisoformat(task["next_attempt_at"])
    created = datetime.fromisoformat(task["created_at"])
    assert due - created == timedelta(seconds=30)
    assert redis_client.llen("qs:dramatiq:default") == 0
    assert redis_client.zscore("qs:schedule", task["id"]) is not None
    cancelled = client.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    assert redis_client.zscore("qs:schedule", task["id"]) is None


def test_run_at(client: TestClient[Any], redis_client: redis.Redis) -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert client.post("/api/v1/tasks", json=dict(HOOK, run_at=future)).json()["status"] == "scheduled"
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert client.post("/api/v1/tasks", json=dict(HOOK, run_at=past)).json()["status"] == "pending"
    assert_problem(client.post("/api/v1/tasks", json=dict(HOOK, run_at="2030-01-01T00:00:00")), 422, "run_at")
    assert_problem(client.post("/api/v1/tasks", json=dict(HOOK, run_at="tomorrow")), 422, "run_at")
    both = dict(HOOK, run_at=future, delay="1s")
    assert_problem(client.post("/api/v1/tasks", json=both), 422, "delay")


def test_priority_queue_gets_its_own_actor(client: TestClient[Any], redis_client: redis.Redis) -> None:
    task = client.post("/api/v1/tasks", json=dict(HOOK, queue="priority")).json()
    assert task["queue"] == "priority"
    (msg,) = messages(redis_client, "priority")
    assert msg["actor_name"] == "run_task_priority"
    assert msg["args"] == [task["id"], 1]


def test_retry_override_comes_back_as_written_and_is_stored_resolved(
    client: TestClient[Any], redis_client: redis.Redis
) -> None:
    body = {"type": "webhook", "payload": HOOK, "retry": {"interval": "2s", "max_retries": 3}}
    task = client.post("/api/v1/tasks", json=body).json()
    assert task["retry"] == {"interval": "2s", "max_retries": 3}
    assert client.get(f"/api/v1/tasks/{task['id']}").json()["retry"] == {"interval": "2s", "max_retries": 3}
    # Stored as the whole policy, resolved against the server's defaults once, at submit.
    stored = json.loads(redis_client.hget(f"qs:task:{task['id']}", "retry"))  # type: ignore[arg-type]
    assert stored == {
        "strategy": "fixed",
        "interval_ms": 2000,
        "max_age_ms": 86_400_000,
        "max_retries": 3,
        "requested": {"interval": "2s", "max_retries": 3},
    }
    switched = dict(HOOK, retry={"strategy": "exponential", "max_delay": "1h"})
    assert client.post("/api/v1/tasks", json=switched).json()["retry"] == switched["retry"]
    task = client.post("/api/v1/tasks", json=dict(HOOK, max_retries=5)).json()
    assert task["retry"] == {"max_retries": 5}


def test_a_task_without_retry_options_stores_no_policy(
    client: TestClient[Any], redis_client: redis.Redis
) -> None:
    task = client.post("/api/v1/tasks", json=HOOK).json()
    assert task["retry"] is None
    assert not redis_client.hexists(f"qs:task:{task['id']}", "retry")


def test_the_same_retry_options_resubmitted_are_the_same_task(client: TestClient[Any]) -> None:
    body = dict(HOOK, id="r-1", retry={"interval": "2s"})
    assert client.post("/api/v1/tasks", json=body).status_code == 201
    assert client.post("/api/v1/tasks", json=body).status_code == 200
    assert_problem(client.post("/api/v1/tasks", json=dict(body, retry={"interval": "3s"})), 409)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"max_retries": 101}, "max_retries"),
        ({"max_retries": -1}, "max_retries"),
        ({"retry": {"strategy": "linear"}}, "retry.strategy"),
        ({"retry": {"interval": "soon"}}, "retry.interval"),
        ({"retry": {"strategy": "fixed", "min_delay": "1s"}}, "retry"),
        ({"retry": {"bogus": 1}}, "retry.bogus"),
        ({"delay": "later"}, "delay"),
        ({"delay": "400d"}, "delay"),
        ({"timeout": "1h"}, "timeout"),
        ({"timeout": "0s"}, "timeout"),
        ({"queue": "urgent"}, "queue"),
    ],
)
def test_bad_options_name_the_field(client: TestClient[Any], extra: dict[str, Any], field: str) -> None:
    assert_problem(client.post("/api/v1/tasks", json={**HOOK, **extra}), 422, field)


def test_timeout_is_stored(client: TestClient[Any], redis_client: redis.Redis) -> None:
    task = client.post("/api/v1/tasks", json=dict(HOOK, timeout="5s")).json()
    assert redis_client.hget(f"qs:task:{task['id']}", "timeout_ms") == "5000"


def _fail(redis_client: redis.Redis, task_id: str) -> None:
    store = RedisTaskStore(redis_client)
    claim = store.claim(task_id, 1, 10**13, 10**13 + 1)
    assert isinstance(claim, Claim)
    attempt = Attempt(n=1, started_at=1, duration_ms=1, outcome=Outcome.PERMANENT, status_code=404)
    result = AttemptResult(Outcome.PERMANENT, error="HTTP 404", status_code=404)
    assert store.finish(
        claim.task, attempt, Decision(TaskStatus.FAILED), result, now=10**13, retention_ms=60_000
    ).recorded


def test_manual_retry_of_a_failed_task(client: TestClient[Any], redis_client: redis.Redis) -> None:
    task_id = client.post("/api/v1/tasks", json=HOOK).json()["id"]
    assert_problem(client.post(f"/api/v1/tasks/{task_id}/retry"), 409)  # pending: nothing to retry
    _fail(redis_client, task_id)
    r = client.post(f"/api/v1/tasks/{task_id}/retry")
    assert r.status_code == 200
    task = r.json()
    assert task["status"] == "pending"
    assert task["completed_at"] is None
    assert len(task["attempt_history"]) == 1  # history kept
    assert messages(redis_client, "default")[-1]["args"] == [task_id, 2]
    assert redis_client.pttl(f"qs:task:{task_id}") == -1  # no longer due for expiry
    assert redis_client.zscore("qs:expiry", task_id) is None
    # The next claim is recorded as manual.
    claim = RedisTaskStore(redis_client).claim(task_id, 2, 10**13, 10**13 + 1)
    assert isinstance(claim, Claim)
    assert claim.task.trigger == "manual"
    assert claim.task.attempt_base == 1
    assert_problem(client.post("/api/v1/tasks/nope/retry"), 404)


def test_manual_retry_of_a_cancelled_task(client: TestClient[Any]) -> None:
    task_id = client.post("/api/v1/tasks", json=HOOK).json()["id"]
    client.post(f"/api/v1/tasks/{task_id}/cancel")
    assert client.post(f"/api/v1/tasks/{task_id}/retry").json()["status"] == "pending"


def test_list_filters(client: TestClient[Any], redis_client: redis.Redis) -> None:
    a = client.post("/api/v1/tasks", json=HOOK).json()["id"]
    b = client.post("/api/v1/tasks", json=dict(HOOK, queue="priority")).json()["id"]
    c = client.post("/api/v1/tasks", json=dict(HOOK, delay="1h")).json()["id"]
    client.post(f"/api/v1/tasks/{a}/cancel")

    def ids(**params: Any) -> list[str]:
        r = client.get("/api/v1/tasks", params=params)
        assert r.status_code == 200, r.text
        return [t["id"] for t in r.json()["items"]]

    assert ids(status=["cancelled", "scheduled"]) == [c, a]
    assert ids(queue="priority") == [b]
    assert ids(status="pending", type="webhook") == [b]
    created_b = client.get(f"/api/v1/tasks/{b}").json()["created_at"]
    assert ids(created_before=created_b) == [b, a] or ids(created_before=created_b)[-1] == a
    assert c in ids(created_after=created_b)
    assert (
        a not in ids(created_after=created_b)
        or created_b == client.get(f"/api/v1/tasks/{a}").json()["created_at"]
    )


def test_stats(client: TestClient[Any], redis_client: redis.Redis) -> None:
    for _ in range(3):
        client.post("/api/v1/tasks", json=HOOK)
    client.post("/api/v1/tasks", json=dict(HOOK, queue="priority"))
    client.post("/api/v1/tasks", json=dict(HOOK, delay="1h"))
    stats = client.get("/api/v1/stats").json()
    assert stats["by_status"]["pending"] == 4
    assert stats["by_status"]["scheduled"] == 1
    assert stats["by_status"]["completed"] == 0
    assert stats["by_type"]["webhook"] == 5
    assert stats["queues"]["default"] == {"ready": 3, "dead": 0}
    assert stats["queues"]["priority"] == {"ready": 1, "dead": 0}
    assert stats["delayed"] == 1
    assert stats["oldest_pending_age_ms"] >= 0
