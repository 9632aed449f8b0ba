"""worker/health.py: `judge`, what the worker processes' status reports mean (pure: no processes),
and `Probe`, what a worker process reports about Redis, against a real Redis made full or
read-only by the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from queue_system.local.embedded import EmbeddedRedis
from queue_system.storage.keys import Keys
from queue_system.worker.health import CONSUMER_STALE_S, STATUS_STALE_S, Probe, judge

NOW = 1_700_000_000.0


def status(pid: int = 10, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "pid": pid,
        "at": NOW - 0.5,
        "state": "running",
        "consumers": {
            "default": {"alive": True, "polled_ago_s": 0.1},
            "priority": {"alive": True, "polled_ago_s": 0.05},
        },
        "threads": {"alive": 8, "total": 8},
        "in_flight": 3,
        "heartbeat_at_ms": int((NOW - 0.2) * 1000),
        "redis_error": None,
        "redis_ok_since": NOW - 600,
    }
    return base | changes


def test_every_process_reporting_and_consuming_is_healthy() -> None:
    verdict = judge([status(10), status(11)], expected=2, now=NOW)
    assert verdict.healthy and not verdict.stalled and not verdict.reasons
    body = verdict.body()
    assert body["status"] == "ok" and [p["pid"] for p in body["processes"]] == [10, 11]
    first = body["processes"][0]
    assert first["in_flight"] == 3 and first["consumers_alive"] == first["consumers"] == 2
    assert first["threads"] == {"alive": 8, "total": 8} and first["last_heartbeat_age_s"] == 0.2


def test_redis_away_is_unhealthy_but_not_a_stall() -> None:
    stale = {"default": {"alive": True, "polled_ago_s": 60.0}}
    error = "Redis is unreachable: ConnectionError: refused"
    verdict = judge([status(redis_error=error, redis_ok_since=None, consumers=stale)], 1, NOW)
    assert not verdict.healthy and not verdict.stalled
    assert verdict.reasons == ["process 10: Redis is unreachable: ConnectionError: refused"]


def test_a_dead_consumer_is_a_stall() -> None:
    dead = {"default": {"alive": False, "polled_ago_s": 0.1}}
    verdict = judge([status(consumers=dead)], 1, NOW)
    assert not verdict.healthy
    assert [(s.pid, s.hung) for s in verdict.stalled] == [(10, False)]
    assert "the consumer of default died" in verdict.stalled[0].reason


def test_a_consumer_that_stopped_polling_while_redis_answers_is_a_stall() -> None:
    slow = {"default": {"alive": True, "polled_ago_s": CONSUMER_STALE_S + 5}}
    verdict = judge([status(consumers=slow)], 1, NOW)
    assert verdict.stalled and "has not polled Redis for 15s" in verdict.stalled[0].reason


def test_just_after_an_outage_a_consumer_gets_time_to_reconnect() -> None:
    slow = {"default": {"alive": True, "polled_ago_s": CONSUMER_STALE_S + 5}}
    verdict = judge([status(consumers=slow, redis_ok_since=NOW - 2)], 1, NOW)
    assert verdict.healthy and not verdict.stalled


def test_a_process_that_stopped_reporting_is_hung() -> None:
    verdict = judge([status(10), status(11, at=NOW - STATUS_STALE_S - 1)], 2, NOW)
    assert [(s.pid, s.hung) for s in verdict.stalled] == [(11, True)]
    assert "1 of 2 worker processes reporting" in verdict.reasons


def test_all_worker_threads_dead_is_a_stall() -> None:
    verdict = judge([status(threads={"alive": 0, "total": 8})], 1, NOW)
    assert verdict.stalled and "every worker thread died" in verdict.stalled[0].reason


def test_starting_and_stopping_are_unhealthy_without_a_stall() -> None:
    starting = judge([], 2, NOW)
    assert not starting.healthy and starting.reasons == ["0 of 2 worker processes reporting"]
    booting = judge([status(heartbeat_at_ms=None)], 1, NOW)
    assert not booting.stalled and booting.reasons == ["process 10: no Dramatiq heartbeat yet"]
    stopping = judge([status(state="stopping")], 1, NOW)
    assert not stopping.healthy and not stopping.stalled
    assert stopping.reasons == ["process 10 is stopping"]


KEYS = Keys()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[redis.Redis]:
    """A Redis of the test's own: it is made full or read-only."""
    server = EmbeddedRedis(tmp_path / "r", persist=False)
    server.start()
    client = redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=2)
    try:
        yield client
    finally:
        client.close()
        server.stop()


def probe(client: redis.Redis) -> Probe:
    client.zadd(KEYS.heartbeats, {"broker-1": 1_700_000_000_000})
    return Probe(client, KEYS.heartbeats, "broker-1", KEYS.probe)


def test_the_probe_writes_a_key_with_an_expiry_when_redis_takes_writes(own_redis: redis.Redis) -> None:
    p = probe(own_redis)
    assert p.heartbeat_ms() == 1_700_000_000_000 and p.error is None and p.ok_since is not None
    assert 0 < cast(int, own_redis.pttl(KEYS.probe)) <= 10_000


def test_a_full_redis_is_reported_as_full_not_as_healthy(own_redis: redis.Redis) -> None:
    p = probe(own_redis)
    own_redis.config_set("maxmemory-policy", "noeviction")
    own_redis.config_set("maxmemory", 1)  # below what an empty Redis holds: every write is refused
    assert p.heartbeat_ms() == 1_700_000_000_000  # reads still work ...
    assert p.error and "out of memory" in p.error and "OOM" in p.error and p.ok_since is None
    verdict = judge([status(redis_error=p.error, redis_ok_since=p.ok_since)], 1, NOW)
    assert not verdict.healthy and not verdict.stalled  # ... and a restart would not help
    assert verdict.reasons == [f"process 10: {p.error}"]
    assert "unreachable" not in verdict.reasons[0]

    own_redis.config_set("maxmemory", 0)
    assert p.heartbeat_ms() is not None and p.error is None


def test_a_read_only_replica_is_reported_as_such(own_redis: redis.Redis) -> None:
    p = probe(own_redis)
    own_redis.replicaof("127.0.0.1", "1")  # a master nobody runs: a read-only replica
    p.heartbeat_ms()
    assert p.error and "read-only replica" in p.error


def test_a_stopped_redis_is_reported_unreachable(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "r", persist=False)
    server.start()
    client = redis.Redis.from_url(server.url, socket_connect_timeout=1, socket_timeout=1)
    server.stop()
    p = Probe(client, KEYS.heartbeats, "broker-1", KEYS.probe)
    try:
        assert p.heartbeat_ms() is None and p.error and p.error.startswith("Redis is unreachable")
    finally:
        client.close()
