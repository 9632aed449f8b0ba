"""Batch submit (`POST /api/v1/tasks/batch`): the real app in-process on a real Redis, no worker.

Each item is its own submit: the valid ones are stored and queued, the bad ones answer a problem
naming their field under `tasks[i]`, and the answer's order is the request's."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.config.settings import load_settings
from queue_system.storage.keys import Keys

BATCH = "/api/v1/tasks/batch"
KEYS = Keys()


def _app(redis_url: str, **env: str) -> TestClient[Any]:
    base = {"REDIS_URL": redis_url, "EGRESS_ALLOW_CIDRS": "127.0.0.0/8", "TASK_BATCH_MAX": "50"}
    return TestClient(create_app(load_settings(base | env)))


@pytest.fixture
def client(redis_client: redis.Redis, redis_url: str) -> Iterator[TestClient[Any]]:
    with _app(redis_url, API_MAX_BODY_BYTES="8KiB") as test_client:
        yield test_client


def echo(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "echo", "payload": text, **extra}


def test_mixed_items_each_answered_in_order(client: TestClient[Any], redis_client: redis.Redis) -> None:
    tasks: list[Any] = [
        echo("one", id="b-1"),
        {"url": "ftp://example.test/x"},  # webhook shorthand, bad scheme
        {"type": "webhook", "payload": {"url": "not a url"}},
        7,  # not an object
        {"type": "nope", "payload": 1},
        echo("two", queue="nowhere"),
        {"url": "http://127.0.0.1:9/hook", "id": "b-2"},
        echo("three", delay="1h", run_at="2030-01-01T00:00:00Z"),
        echo("four", unknown_field=1),
    ]
    r = client.post(BATCH, json={"tasks": tasks})
    assert r.status_code == 200, r.text  # not all created
    body = r.json()
    assert [item["index"] for item in body["items"]] == list(range(len(tasks)))
    assert [item["status"] for item in body["items"]] == [201, 422, 422, 422, 422, 422, 201, 422, 422]
    assert (body["created"], body["existing"], body["failed"]) == (2, 0, 7)
    fields = [item.get("problem", {}).get("field") for item in body["items"]]
    assert fields == [
        None,
        "tasks[1].url",
        "tasks[2].payload.url",
        "tasks[3]",
        "tasks[4].type",
        "tasks[5].queue",
        None,
        "tasks[7].delay",
        "tasks[8].unknown_field",
    ]
    for item in body["items"]:
        if "problem" in item:
            problem = item["problem"]
            assert problem["status"] == item["status"] and "task" not in item
            assert problem["type"].startswith("urn:queue-system:problem:")
            if not problem["type"].endswith("unknown-type"):  # that one lists the known types instead
                assert problem["detail"].startswith(f"{problem['field']}: ")
            assert [e["field"] for e in problem["errors"]] == [problem["field"]]
    assert body["items"][4]["problem"]["known_types"]
    # The two good ones are stored and queued; nothing else is.
    assert body["items"][0]["task"]["id"] == "b-1" and body["items"][0]["task"]["status"] == "pending"
    assert body["items"][6]["task"]["type"] == "webhook"
    assert redis_client.zcard(KEYS.index()) == 2
    assert redis_client.hget(KEYS.task("b-1"), "status") == "pending"
    assert redis_client.hget(KEYS.task("b-2"), "status") == "pending"
    assert redis_client.llen(KEYS.queue("default")) == 2


def test_all_created_is_201_and_each_task_reads_back(client: TestClient[Any]) -> None:
    r = client.post(BATCH, json={"tasks": [echo(str(i)) for i in range(20)]})
    assert r.status_code == 201, r.text
    ids = [item["task"]["id"] for item in r.json()["items"]]
    assert len(set(ids)) == 20
    for i, task_id in enumerate(ids):
        got = client.get(f"/api/v1/tasks/{task_id}").json()
        assert got["payload"] == str(i) and got["status"] == "pending"


def test_same_id_inside_a_batch_is_a_resubmit(client: TestClient[Any], redis_client: redis.Redis) -> None:
    tasks = [echo("a", id="dup"), echo("a", id="dup"), echo("other", id="dup")]
    r = client.post(BATCH, json={"tasks": tasks})
    assert r.status_code == 200, r.text
    first, second, third = r.json()["items"]
    assert (first["status"], second["status"], third["status"]) == (201, 200, 409)
    assert second["task"]["id"] == "dup" and second["task"]["created_at"] == first["task"]["created_at"]
    assert second["task"]["message"] == "task already exists (same id and request)"
    assert third["problem"]["location"] == "/api/v1/tasks/dup"
    assert redis_client.zcard(KEYS.index()) == 1
    assert redis_client.llen(KEYS.queue("default")) == 1  # enqueued once


def test_ids_are_idempotent_across_batches_and_single_submits(
    client: TestClient[Any], redis_client: redis.Redis
) -> None:
    assert client.post("/api/v1/tasks", json=echo("x", id="s-1")).status_code == 201
    tasks = [echo("x", id="s-1"), echo("y", id="s-2"), echo("changed", id="s-1")]
    first = client.post(BATCH, json={"tasks": tasks})
    assert [i["status"] for i in first.json()["items"]] == [200, 201, 409]
    again = client.post(BATCH, json={"tasks": tasks[:2]})
    assert again.status_code == 200
    assert [i["status"] for i in again.json()["items"]] == [200, 200]
    assert again.json()["existing"] == 2
    assert client.post("/api/v1/tasks", json=echo("y", id="s-2")).status_code == 200
    assert redis_client.zcard(KEYS.index()) == 2


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"tasks": []}, 422, "tasks"),
        ({"tasks": [echo(str(i)) for i in range(51)]}, 422, "tasks"),  # TASK_BATCH_MAX=50
        ([echo("bare list")], 422, "body"),  # the body is an object with `tasks`
        ({"tasks": echo("not a list")}, 422, "tasks"),
        ({"tasks": [echo("a")], "extra": 1}, 422, "extra"),
        ({}, 422, "tasks"),
    ],
)
def test_a_batch_refused_whole_names_the_field(
    client: TestClient[Any], redis_client: redis.Redis, body: Any, status: int, field: str
) -> None:
    r = client.post(BATCH, json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["field"] == field
    assert redis_client.zcard(KEYS.index()) == 0


def test_malformed_json_is_400(client: TestClient[Any]) -> None:
    r = client.post(BATCH, content=b'{"tasks": [', headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "body"


def test_a_body_over_the_size_limit_is_413(client: TestClient[Any], redis_client: redis.Redis) -> None:
    tasks = [echo("x" * 300) for _ in range(30)]  # ~10 KB > API_MAX_BODY_BYTES=8KiB
    r = client.post(BATCH, json={"tasks": tasks})
    assert r.status_code == 413, r.text
    assert r.json()["type"] == "urn:queue-system:problem:too-large"
    assert redis_client.zcard(KEYS.index()) == 0


def test_the_rate_limit_counts_each_item(redis_client: redis.Redis, redis_url: str) -> None:
    with _app(redis_url, API_RATE_LIMIT="10/min") as client:
        assert client.post(BATCH, json={"tasks": [echo(str(i)) for i in range(8)]}).status_code == 201
        over = client.post(BATCH, json={"tasks": [echo(str(i)) for i in range(3)]})  # 8 + 3 > 10
        assert over.status_code == 429, over.text
        assert int(over.headers["retry-after"]) >= 1
        never = client.post(BATCH, json={"tasks": [echo(str(i)) for i in range(11)]})
        assert never.status_code == 422 and never.json()["field"] == "tasks"
        assert "at most 10 per batch" in never.json()["detail"]
    assert redis_client.zcard(KEYS.index()) == 8


def test_too_few_replicas_is_one_503_and_the_retry_is_safe_by_id(
    redis_client: redis.Redis, redis_url: str
) -> None:
    tasks = [echo(str(i), id=f"r-{i}") for i in range(5)]
    with _app(redis_url, REDIS_MIN_REPLICAS="1", REDIS_MIN_REPLICAS_TIMEOUT="50ms") as waiting:
        r = waiting.post(BATCH, json={"tasks": tasks})
    assert r.status_code == 503, r.text
    assert r.json()["type"] == "urn:queue-system:problem:storage-not-replicated"
    assert r.headers["retry-after"] == "1"
    with _app(redis_url) as plain:
        again = plain.post(BATCH, json={"tasks": tasks})
    assert [i["status"] for i in again.json()["items"]] == [200] * 5  # stored once, not twice
    assert redis_client.zcard(KEYS.index()) == 5


# -- a property over random mixes --------------------------------------------------------------

BAD_ITEMS: list[tuple[Any, str]] = [
    ({"url": "ftp://x.test/"}, "url"),
    ({"type": "nope", "payload": 1}, "type"),
    ({"type": "echo", "payload": "p", "queue": 3}, "queue"),
    ({"type": "echo", "payload": "p", "id": "bad id!"}, "id"),
    ({"type": "echo", "payload": "p", "timeout": "soon"}, "timeout"),
    ("just a string", ""),
]
good_item = st.builds(
    lambda n, text, with_id: echo(text, id=f"p-{n}") if with_id else echo(text),
    st.integers(0, 5),  # a small pool of ids: repeats, inside a batch and across batches
    st.sampled_from(["a", "b"]),
    st.booleans(),
)
bad_item = st.sampled_from(range(len(BAD_ITEMS))).map(lambda i: ("bad", i))
batches = st.lists(st.lists(st.one_of(good_item, bad_item), min_size=1, max_size=12), min_size=1, max_size=3)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=batches)
def test_random_mixes_create_every_good_item_once(
    client: TestClient[Any], redis_client: redis.Redis, batches: list[list[Any]]
) -> None:
    redis_client.flushdb()
    seen: dict[str, str] = {}  # the model: id -> the payload that created it
    created = 0
    for batch in batches:
        tasks = [BAD_ITEMS[item[1]][0] if isinstance(item, tuple) else item for item in batch]
        nonce = uuid.uuid4().hex[:6]  # payloads of id-less items, so they can be told apart
        tasks = [
            dict(t, payload=f"{t['payload']}-{nonce}-{i}") if _anonymous(t) else t
            for i, t in enumerate(tasks)
        ]
        r = client.post(BATCH, json={"tasks": tasks})
        items = r.json()["items"]
        assert [i["index"] for i in items] == list(range(len(tasks)))
        for task, item in zip(tasks, items, strict=True):
            if task in [bad for bad, _ in BAD_ITEMS]:
                field = next(f for bad, f in BAD_ITEMS if bad == task)
                assert item["status"] == 422 and item["problem"]["field"].startswith(
                    f"tasks[{item['index']}]"
                )
                assert item["problem"]["field"].endswith(field)
                continue
            task_id = task.get("id")
            if task_id is None or task_id not in seen:
                assert item["status"] == 201, item
                assert item["task"]["payload"] == task["payload"]
                created += 1
                if task_id is not None:
                    seen[task_id] = task["payload"]
            else:
                assert item["status"] == (200 if seen[task_id] == task["payload"] else 409), item
        assert r.status_code == (201 if all(i["status"] == 201 for i in items) else 200)
    assert redis_client.zcard(KEYS.index()) == created
    assert redis_client.llen(KEYS.queue("default")) == created  # each enqueued once
    for task_id, payload in seen.items():
        stored = redis_client.get(KEYS.payload(task_id))
        assert isinstance(stored, str) and json.loads(stored) == payload


def _anonymous(task: Any) -> bool:
    return isinstance(task, dict) and task.get("type") == "echo" and "id" not in task and len(task) == 2
