"""The connection factory's settings (REDIS_SENTINELS and friends), the start-up durability check,
REDIS_MIN_REPLICAS (WAIT) on a real Redis without replicas, and the consumer's failover errors."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from dramatiq.errors import ConnectionClosed
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.config.settings import load_settings
from queue_system.errors import ConfigError
from queue_system.storage.connection import RedisTarget, check_durability, parse_sentinels, sync_client
from queue_system.storage.keys import Keys
from queue_system.worker.broker import FinishAckingBroker

SENTINELS = {"REDIS_SENTINELS": "10.0.0.5:26379,10.0.0.6:26379", "REDIS_SENTINEL_MASTER": "qs"}


# -- settings ----------------------------------------------------------------------------------


def test_sentinel_settings() -> None:
    env = SENTINELS | {"REDIS_URL": "rediss://:pw@ignored:6380/3", "REDIS_SENTINEL_PASSWORD": "s3cret"}
    s = load_settings(env)
    assert s.redis == RedisTarget(
        "rediss://:pw@ignored:6380/3", (("10.0.0.5", 26379), ("10.0.0.6", 26379)), "qs", "s3cret"
    )
    assert "s3cret" not in repr(s) and "s3cret" not in repr(s.redis)
    assert "s3cret" not in s.redis.describe() and "pw" not in s.redis.describe()


def test_sentinels_without_a_url_need_none() -> None:
    s = load_settings(SENTINELS)
    assert s.redis_url == "redis://"  # "configured": `make run` starts no embedded Redis
    assert s.redis.sentinel


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"REDIS_SENTINELS": "10.0.0.5", "REDIS_SENTINEL_MASTER": "qs"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "10.0.0.5:http", "REDIS_SENTINEL_MASTER": "qs"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "10.0.0.5:70000", "REDIS_SENTINEL_MASTER": "qs"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": ":26379", "REDIS_SENTINEL_MASTER": "qs"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": " , ", "REDIS_SENTINEL_MASTER": "qs"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "10.0.0.5:26379"}, "REDIS_SENTINEL_MASTER"),
        ({"REDIS_SENTINEL_MASTER": "qs"}, "REDIS_SENTINELS"),
        (SENTINELS | {"REDIS_URL": "unix:///tmp/r.sock"}, "REDIS_URL"),
        ({"REDIS_MIN_REPLICAS": "-1"}, "REDIS_MIN_REPLICAS"),
        ({"REDIS_MIN_REPLICAS_TIMEOUT": "6s"}, "REDIS_MIN_REPLICAS_TIMEOUT"),
        ({"REDIS_MIN_REPLICAS_TIMEOUT": "0"}, "REDIS_MIN_REPLICAS_TIMEOUT"),
    ],
)
def test_bad_redis_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")


def test_sentinel_list_forms() -> None:
    assert parse_sentinels("a:1, [::1]:26379 ,") == (("a", 1), ("::1", 26379))


def test_a_url_target_is_from_url_and_describes_without_its_password() -> None:
    target = RedisTarget("redis://:hunter2@db.internal:6379/0")
    assert target.describe() == "redis://db.internal:6379/0"
    client = sync_client(target)
    assert client.connection_pool.connection_kwargs["password"] == "hunter2"
    client.close()


def test_a_sentinel_client_carries_the_urls_auth_db_and_tls() -> None:
    env = SENTINELS | {"REDIS_URL": "rediss://user:pw@ignored:1/4", "REDIS_SENTINEL_PASSWORD": "sp"}
    client = sync_client(load_settings(env).redis)
    pool: Any = client.connection_pool
    assert type(pool).__name__ == "SentinelConnectionPool"
    assert pool.connection_class.__name__ == "SentinelManagedSSLConnection"
    kwargs = pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"], kwargs["db"]) == ("user", "pw", 4)
    assert "host" not in kwargs  # the sentinels say where the primary is
    assert pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs["password"] == "sp"
    client.close()


# -- what the connected Redis says at start ----------------------------------------------------


def test_durability_warnings(redis_client: redis.Redis) -> None:
    # The session's Redis runs without persistence (tests/conftest.py) and without replicas.
    before = redis_client.config_get("maxmemory-policy")["maxmemory-policy"]  # type: ignore[index]
    try:
        redis_client.config_set("maxmemory-policy", "allkeys-lru")
        warnings = check_durability(redis_client, min_replicas=1)
    finally:
        redis_client.config_set("maxmemory-policy", before)
    text = "\n".join(warnings)
    assert "maxmemory-policy allkeys-lru" in text and "noeviction" in text
    assert "does not persist" in text
    assert "REDIS_MIN_REPLICAS=1" in text and "0 replica(s)" in text
    assert not [w for w in check_durability(redis_client) if "evicts" in w or "REDIS_MIN" in w]


# -- REDIS_MIN_REPLICAS ------------------------------------------------------------------------


@pytest.fixture
def waiting_api(redis_client: redis.Redis, redis_url: str) -> Iterator[TestClient[Any]]:
    env = {"REDIS_URL": redis_url, "REDIS_MIN_REPLICAS": "1", "REDIS_MIN_REPLICAS_TIMEOUT": "100ms"}
    with TestClient(create_app(load_settings(env))) as client:
        yield client


def test_a_submit_no_replica_confirmed_is_a_503_and_its_retry_is_safe(
    waiting_api: TestClient[Any], redis_client: redis.Redis, redis_url: str
) -> None:
    body = {"id": str(uuid.uuid4()), "type": "echo", "payload": "hello"}
    response = waiting_api.post("/api/v1/tasks", json=body)
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    problem = response.json()
    assert problem["type"] == "urn:queue-system:problem:storage-not-replicated"
    assert "REDIS_MIN_REPLICAS=1" in problem["detail"] and "same `id`" in problem["detail"]
    # Stored on the primary all the same; the retry finds it, and still says what it lacks.
    assert redis_client.exists(Keys().task(body["id"]))
    assert waiting_api.post("/api/v1/tasks", json=body).status_code == 503
    # Without the requirement the retry is the idempotent replay of that one task.
    with TestClient(create_app(load_settings({"REDIS_URL": redis_url}))) as plain:
        again = plain.post("/api/v1/tasks", json=body)
    assert again.status_code in (200, 201), again.text
    assert again.json()["id"] == body["id"]
    assert redis_client.zcard(Keys().index()) == 1


# -- the consumer across a failover ------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts and never answers (a primary that stopped)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def test_a_redis_timeout_restarts_the_consumer_as_a_connection_error(silent_server: int) -> None:
    client = redis.Redis(port=silent_server, socket_timeout=0.2, socket_connect_timeout=0.2)
    broker = FinishAckingBroker(client=client, namespace="qs-test-timeout")
    consumer = broker.consume("default", prefetch=2, timeout=100)
    with pytest.raises(ConnectionClosed):
        next(consumer)  # Dramatiq's own consumer let the TimeoutError through (dramatiq#894)
    client.close()


def test_a_readonly_replica_restarts_the_consumer_and_drops_the_connections(
    redis_client: redis.Redis, redis_url: str
) -> None:
    redis_client.config_set("replica-read-only", "yes")
    replica_of = redis_client.execute_command("REPLICAOF", "127.0.0.1", "1")  # type: ignore[no-untyped-call]
    assert replica_of == "OK"
    try:
        client = redis.Redis.from_url(redis_url)
        broker = FinishAckingBroker(client=client, namespace="qs-test-readonly")
        consumer = broker.consume("default", prefetch=2, timeout=100)
        with pytest.raises(ConnectionClosed, match="READONLY"):
            next(consumer)
        pooled = client.connection_pool._available_connections
        assert all(conn._sock is None for conn in pooled)  # the next command connects afresh
        client.close()
    finally:
        redis_client.execute_command("REPLICAOF", "NO", "ONE")  # type: ignore[no-untyped-call]
