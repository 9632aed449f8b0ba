"""Storage errors told truthfully, on a real Redis the test breaks on purpose: full (maxmemory with
`noeviction`), a read-only replica, stopped, and a key of the wrong type under a script. The real
app in-process (Litestar's TestClient); every route family goes through the one translation."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from litestar.testing import TestClient
from loguru import logger

from queue_system.api.app import create_app
from queue_system.config.settings import load_settings
from queue_system.local.embedded import EmbeddedRedis
from queue_system.service.runner import through_outage
from queue_system.storage.keys import Keys

HOOK = {"url": "http://127.0.0.1:9/hook", "method": "POST", "body": "x"}
KEYS = Keys()


def app_client(url: str) -> TestClient[Any]:
    settings = load_settings({"REDIS_URL": url, "EGRESS_ALLOW_CIDRS": "127.0.0.0/8"})
    return TestClient(create_app(settings))


@pytest.fixture(scope="module")
def breakable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A Redis of this module's own, made full or read-only by the tests (never the shared one)."""
    with EmbeddedRedis(Path(tmp_path_factory.mktemp("broken-redis")), persist=False) as server:
        yield server


@pytest.fixture
def admin(breakable: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(breakable.url, decode_responses=True)
    client.flushall()
    try:
        yield client
    finally:  # whole again for the next test
        client.config_set("maxmemory", 0)
        client.replicaof("NO", "ONE")
        client.flushall()
        client.close()


def used_memory(client: redis.Redis) -> int:
    return int(cast(dict[str, Any], client.info("memory"))["used_memory"])


def fill(admin: redis.Redis) -> None:
    """maxmemory 2 MB above what Redis uses now, `noeviction`, then write until Redis refuses."""
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", used_memory(admin) + 2 * 1024 * 1024)
    chunk = "x" * 64 * 1024
    for i in range(200):  # 12.5 MB at most: bounded
        try:
            admin.set(f"filler:{i}", chunk)
        except redis.exceptions.OutOfMemoryError:
            break
    else:
        raise AssertionError("Redis never refused a write")
    # The refused write's own 64 KB left with its reply: the limit goes just under what the data
    # holds, so Redis stays full for every later write, as a Redis that filled up does.
    admin.config_set("maxmemory", used_memory(admin) - 128 * 1024)


def wait_ready(client: TestClient[Any], status: int, timeout: float = 5.0) -> dict[str, Any]:
    """/ready until it answers `status` (its write probe runs at most once a second)."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/ready")
        if response.status_code == status or time.monotonic() > deadline:
            assert response.status_code == status, response.text
            body: dict[str, Any] = response.json()
            return body
        time.sleep(0.05)


def assert_storage_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:queue-system:problem:{slug}" and body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def test_a_full_redis_is_a_503_naming_memory_and_ready_says_so(
    admin: redis.Redis, breakable: EmbeddedRedis
) -> None:
    with app_client(breakable.url) as client:
        assert wait_ready(client, 200)["redis"] == "ok"
        fill(admin)
        refused = client.post("/api/v1/tasks", json=HOOK)
        body = assert_storage_problem(refused, 503, "storage-full")
        assert body["title"] == "Redis is out of memory (maxmemory reached)"
        assert "memory" in body["detail"] and "unreachable" not in refused.text.lower()
        assert refused.headers["retry-after"] == "5"
        assert client.get("/api/v1/tasks").status_code == 200  # reads still work: only writes fail

        ready = wait_ready(client, 503)
        assert ready["redis"] == "refuses-writes" and "out of memory" in ready["reason"], ready
        assert "OOM" in ready["reason"]

        admin.config_set("maxmemory", 0)
        wait_ready(client, 200)
        assert client.post("/api/v1/tasks", json=HOOK).status_code == 201


def test_a_read_only_replica_is_a_503_naming_it(admin: redis.Redis, breakable: EmbeddedRedis) -> None:
    with app_client(breakable.url) as client:
        admin.replicaof("127.0.0.1", "1")  # a master nobody runs: Redis stays a read-only replica
        refused = client.post("/api/v1/tasks", json=HOOK)
        body = assert_storage_problem(refused, 503, "storage-read-only")
        assert body["title"] == "Redis is a read-only replica" and "Retry-After" in refused.headers
        ready = wait_ready(client, 503)
        assert ready["redis"] == "refuses-writes" and "read-only replica" in ready["reason"], ready


def test_a_stopped_redis_is_a_503_unreachable(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "r", persist=False)
    server.start()
    try:
        with app_client(server.url) as client:
            assert client.post("/api/v1/tasks", json=HOOK).status_code == 201
            server.stop()
            refused = client.post("/api/v1/tasks", json=HOOK)
            body = assert_storage_problem(refused, 503, "storage-unavailable")
            assert body["title"] == "Redis is unreachable" and refused.headers["retry-after"] == "1"
            ready = client.get("/ready")
            assert ready.status_code == 503 and ready.json()["redis"] == "unreachable"
            assert "Redis is unreachable" in ready.json()["reason"]
    finally:
        server.stop()


# Keys of the wrong type, planted where the routes' scripts and reads look: a damaged record.
PLANTED = (KEYS.index(), KEYS.task("broken"), KEYS.dests, KEYS.heartbeats)
ROUTES = [
    ("POST", "/api/v1/tasks"),
    ("GET", "/api/v1/tasks"),
    ("GET", "/api/v1/tasks/broken"),
    ("POST", "/api/v1/tasks/broken/cancel"),
    ("POST", "/api/v1/tasks/broken/retry"),
    ("DELETE", "/api/v1/tasks/broken"),
    ("GET", "/api/v1/stats"),
    ("GET", "/api/v1/destinations"),
    ("GET", "/api/v1/workers"),
    ("POST", "/tasks"),  # the old system's aliases
    ("GET", "/jobs"),
    ("GET", "/job/broken"),
]


@pytest.fixture
def damaged(redis_client: redis.Redis, redis_url: str) -> Iterator[TestClient[Any]]:
    for key in PLANTED:
        redis_client.set(key, "not what the scripts expect")
    with app_client(redis_url) as client:
        yield client


@pytest.fixture
def logged() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="WARNING", format="{message} {extra}")
    try:
        yield lines
    finally:
        logger.remove(sink)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_wrong_type_under_a_route_is_a_500_storage_error_with_the_request_id(
    damaged: TestClient[Any], logged: list[str], method: str, path: str
) -> None:
    response = damaged.request(method, path, json=HOOK if method == "POST" else None)
    body = assert_storage_problem(response, 500, "storage-error")
    assert body["title"] == "Storage error" and "Retry-After" not in response.headers
    assert "unreachable" not in response.text.lower()
    assert "WRONGTYPE" not in response.text and "script" not in body["title"]  # Redis's words stay inside
    # ... and are in the log line, with the request id that the client was given.
    line = next(line for line in logged if body["request_id"] in line)
    assert "WRONGTYPE" in line and path in line


def test_the_client_request_id_is_echoed_in_the_problem_and_the_log(
    damaged: TestClient[Any], logged: list[str]
) -> None:
    response = damaged.get("/api/v1/tasks", headers={"X-Request-ID": "trace-7f3a"})
    assert response.headers["x-request-id"] == "trace-7f3a"
    assert assert_storage_problem(response, 500, "storage-error")["request_id"] == "trace-7f3a"
    assert any("trace-7f3a" in line and "WRONGTYPE" in line for line in logged)


def test_ready_names_a_storage_error_as_such(damaged: TestClient[Any]) -> None:
    response = damaged.get("/ready")
    assert response.status_code == 503 and response.json()["redis"] == "storage-error"
    assert "unreachable" not in response.text.lower()


@pytest.mark.parametrize("path", ["/dashboard/", "/dashboard/tasks", "/dashboard/tasks/broken"])
def test_a_dashboard_page_with_a_storage_error_is_an_error_page(damaged: TestClient[Any], path: str) -> None:
    response = damaged.get(path, headers={"X-Request-ID": "page-1"})
    assert response.status_code == 500 and response.headers["content-type"].startswith("text/html")
    assert "<h1>Storage error</h1>" in response.text and "page-1" in response.text
    assert "WRONGTYPE" not in response.text


def test_a_dashboard_page_without_redis_is_a_503_page(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "r", persist=False)
    server.start()
    try:
        with app_client(server.url) as client:
            server.stop()
            response = client.get("/dashboard/")
            assert response.status_code == 503 and "<h1>Redis is unreachable</h1>" in response.text
    finally:
        server.stop()


def test_ready_writes_a_probe_key_that_expires_and_probes_at_most_once_a_second(
    redis_client: redis.Redis, redis_url: str
) -> None:
    with app_client(redis_url) as client:
        started = time.monotonic()
        assert client.get("/ready").status_code == 200
        assert 0 < cast(int, redis_client.pttl(KEYS.probe)) <= 10_000  # never a key without an expiry
        redis_client.delete(KEYS.probe)
        assert client.get("/ready").status_code == 200
        if time.monotonic() - started < 1.0:  # within the second: the last probe's result is used
            assert not redis_client.exists(KEYS.probe)
        deadline = time.monotonic() + 5
        while not redis_client.exists(KEYS.probe) and time.monotonic() < deadline:
            client.get("/ready")
            time.sleep(0.05)
        assert 0 < cast(int, redis_client.pttl(KEYS.probe)) <= 10_000


def test_the_worker_holds_an_outcome_while_redis_is_full_and_records_it_once_there_is_room(
    admin: redis.Redis, breakable: EmbeddedRedis
) -> None:
    """A full Redis refuses the worker's FINISH: the outcome waits (as through an outage) instead of
    being dropped for the lease to run the attempt again; a script error is not waited for."""
    client = redis.Redis.from_url(breakable.url, decode_responses=True)
    fill(admin)
    refusals = threading.Event()
    outcome: list[object] = []

    def record() -> object:
        try:
            return client.set("outcome", "recorded")
        except redis.RedisError:
            refusals.set()
            raise

    worker = threading.Thread(target=lambda: outcome.append(through_outage("recording", record, wait_s=20)))
    worker.start()
    try:
        assert refusals.wait(5), "the write was never refused: Redis is not full"
        assert worker.is_alive() and not outcome  # held, not given up
        admin.config_set("maxmemory", 0)  # room again, as when the sweeper has freed some
        worker.join(10)
        assert outcome == [True] and admin.get("outcome") == "recorded"
        admin.set("not-a-hash", "x")
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            through_outage("recording", lambda: client.hset("not-a-hash", "f", "v"), wait_s=20)
    finally:
        admin.config_set("maxmemory", 0)
        worker.join(10)
        client.close()
