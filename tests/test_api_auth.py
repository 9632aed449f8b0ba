"""The API's guard in-process (real app, real Redis): keys, read-only keys, open paths, production
refusal, the rate limit's 429 and the JSON nesting cap."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from litestar.testing import TestClient
from loguru import logger

from queue_system.api.app import create_app
from queue_system.api.keys import hash_key
from queue_system.config.settings import load_settings
from queue_system.errors import ConfigError
from tests.support.api import app_client, assert_problem

ROOT = Path(__file__).resolve().parents[1]
WRITE = "write-key-0123456789"
HASHED = "hashed-key-0123456789"
READER = "read-key-0123456789ab"
TASK = {"type": "echo", "payload": "hi"}


@pytest.fixture
def client(redis_client: redis.Redis, redis_url: str) -> Iterator[TestClient[Any]]:
    env = {"API_KEYS": f"{WRITE},{hash_key(HASHED)}", "API_READ_KEYS": READER}
    with app_client(redis_url, **env) as test_client:
        yield test_client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/tasks"),
        ("GET", "/api/v1/tasks"),
        ("GET", "/api/v1/tasks/x"),
        ("DELETE", "/api/v1/tasks/x"),
        ("GET", "/api/v1/stats"),
        ("POST", "/tasks"),
        ("POST", "/enqueue"),
        ("POST", "/job"),
        ("GET", "/task?id=x"),
        ("GET", "/job/x"),
        ("GET", "/jobs"),
    ],
)
def test_every_api_route_and_alias_needs_a_key(client: TestClient[Any], method: str, path: str) -> None:
    for headers in ({}, bearer("wrong-key-0123456789"), {"X-API-Key": "nope"}, {"Authorization": WRITE}):
        r = client.request(method, path, json=TASK if method == "POST" else None, headers=headers)
        body = assert_problem(r, 401)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert body["type"].endswith(":unauthorized")


def test_keys_plain_hashed_and_x_api_key(client: TestClient[Any]) -> None:
    assert client.post("/api/v1/tasks", json=TASK, headers=bearer(WRITE)).status_code == 201
    assert client.post("/api/v1/tasks", json=TASK, headers=bearer(HASHED)).status_code == 201
    assert client.post("/api/v1/tasks", json=TASK, headers={"X-API-Key": WRITE}).status_code == 201
    assert client.post("/enqueue", json={"payload": "hi"}, headers={"X-API-Key": HASHED}).status_code == 201


def test_a_read_key_reads_but_changes_nothing(client: TestClient[Any]) -> None:
    created = client.post("/api/v1/tasks", json={**TASK, "id": "t-1"}, headers=bearer(WRITE))
    assert created.status_code == 201
    assert client.get("/api/v1/tasks/t-1", headers=bearer(READER)).status_code == 200
    assert client.get("/jobs", headers=bearer(READER)).status_code == 200
    for method, path in [
        ("POST", "/api/v1/tasks"),
        ("POST", "/api/v1/tasks/t-1/cancel"),
        ("DELETE", "/api/v1/tasks/t-1"),
        ("POST", "/enqueue"),
    ]:
        r = client.request(method, path, json=TASK if method == "POST" else None, headers=bearer(READER))
        assert assert_problem(r, 403)["type"].endswith(":forbidden")
    assert client.get("/api/v1/tasks/t-1", headers=bearer(WRITE)).json()["status"] == "pending"


def test_health_ready_schema_stay_open(client: TestClient[Any]) -> None:
    for path in ("/health", "/ready", "/healthz", "/schema/openapi.json"):
        assert client.get(path).status_code == 200, path


def test_development_without_keys_runs_open_and_warns(redis_client: redis.Redis, redis_url: str) -> None:
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING")
    try:
        with app_client(redis_url) as open_client:
            assert open_client.post("/api/v1/tasks", json=TASK).status_code == 201
    finally:
        logger.remove(sink)
    assert any("without a key" in line for line in lines), lines


def test_production_without_keys_refuses_unless_auth_disabled(redis_url: str) -> None:
    with pytest.raises(ConfigError, match="API_KEYS"):
        create_app(load_settings({"REDIS_URL": redis_url, "ENV": "production"}))
    create_app(load_settings({"REDIS_URL": redis_url, "ENV": "production", "API_AUTH": "disabled"}))
    create_app(load_settings({"REDIS_URL": redis_url, "ENV": "production", "API_KEYS": WRITE}))


def test_the_api_command_exits_2_in_production_without_keys(redis_url: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": redis_url, "ENV": "production", "API_PORT": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "cmd" / "api.py")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "configuration error: API_KEYS: ENV=production needs API_KEYS" in done.stderr


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"API_KEYS": "short"}, "API_KEYS"),
        ({"API_KEYS": "sha256:abc"}, "API_KEYS"),
        ({"API_KEYS": WRITE, "API_READ_KEYS": WRITE}, "API_READ_KEYS"),
    ],
)
def test_bad_keys_stop_the_start(redis_url: str, env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        create_app(load_settings({"REDIS_URL": redis_url, **env}))
    assert caught.value.variable == variable
    assert "short" not in str(caught.value).split(":", 1)[1]  # the key itself is never echoed


def test_keys_file(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"# ops team\n{hash_key(HASHED)}\n")
    with app_client(redis_url, API_KEYS_FILE=str(keys)) as c:
        assert c.get("/api/v1/stats").status_code == 401
        assert c.get("/api/v1/stats", headers=bearer(HASHED)).status_code == 200


def test_rate_limit_answers_429_with_retry_after(redis_client: redis.Redis, redis_url: str) -> None:
    env = {"API_KEYS": f"{WRITE},{HASHED}", "API_RATE_LIMIT": "3/min"}
    with app_client(redis_url, **env) as c:
        codes = [c.get("/api/v1/stats", headers=bearer(WRITE)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = c.get("/api/v1/stats", headers=bearer(WRITE))
        body = assert_problem(r, 429)
        assert body["type"].endswith(":rate-limited")
        assert 1 <= int(r.headers["retry-after"]) <= 20
        # Another key has its own bucket; open paths are not counted.
        assert c.get("/api/v1/stats", headers=bearer(HASHED)).status_code == 200
        assert c.get("/health").status_code == 200
    # The bucket is in Redis under a hash of the key, never the key itself, and it expires.
    names = list(redis_client.scan_iter("qs:ratelimit:*"))
    assert len(names) == 2 and all(WRITE not in n for n in names)
    assert all(cast(int, redis_client.pttl(n)) > 0 for n in names)


@pytest.mark.parametrize("depth", [33, 5_000, 200_000])
def test_deep_json_is_a_422_never_a_500(redis_client: redis.Redis, redis_url: str, depth: int) -> None:
    body = '{"type": "echo", "payload": ' + "[" * depth + "]" * depth + "}"
    with app_client(redis_url, API_MAX_BODY_BYTES="1MiB") as c:
        for path in ("/api/v1/tasks", "/enqueue"):
            r = c.post(path, content=body, headers={"Content-Type": "application/json"})
            assert "nested deeper than 32" in assert_problem(r, 422, "body")["detail"]
        ok = '{"type": "echo", "payload": ' + "[" * 30 + "]" * 30 + "}"
        r = c.post("/api/v1/tasks", content=ok, headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and "nested" not in r.text  # the kind's own check answers
    assert redis_client.keys("qs:task:*") == []
