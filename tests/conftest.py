"""Shared fixtures: one real Redis per test session (embedded redis-server, or REDIS_URL), flushed
before each test that uses it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from queue_system.local.embedded import EmbeddedRedis
from queue_system.storage.worker_store import RedisTaskStore


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Redis the tests use: TEST_REDIS_URL if set (its db is flushed!), else an embedded server."""
    external = os.environ.get("TEST_REDIS_URL")
    if external:
        yield external
        return
    # A short path: unix socket paths are limited to ~100 bytes.
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis")), persist=False)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    try:
        yield client
    finally:
        # Left empty too: a test that only takes `redis_url` must not meet what this one wrote
        # (a newer key layout left by tests/test_layout.py stopped tests/test_cli.py's apps).
        client.flushdb()
        client.close()


@pytest.fixture
def store(redis_client: redis.Redis) -> Iterator[RedisTaskStore]:
    """The worker's store on the flushed Redis (what the storage tests drive the scripts through)."""
    store = RedisTaskStore(redis_client)
    yield store
    store.close()
