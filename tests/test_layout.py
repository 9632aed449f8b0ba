"""The key layout's version and the upgrade from layout 1, on a real Redis loaded with old-layout
data written under the old names directly (storage/layout.py); and the start-up refusals, with
the real entry points as processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.config.settings import load_settings
from queue_system.errors import LayoutError
from queue_system.storage.keys import LAYOUT_VERSION, Keys
from queue_system.storage.layout import LayoutAction, ensure_layout
from tests.e2e.support import free_port
from tests.support.layout import OLD_TASK, old_task

K = Keys()
OLD_DEST = "qs:dest:"
DEST = "http://127.0.0.1:9"


@pytest.fixture
def old_layout(redis_client: redis.Redis) -> redis.Redis:
    """Layout 1 with what it did to colliding ids: `b:payload` was created, then `b`, whose
    payload SET overwrote `b:payload`'s record; and `c:history`, whose record sits where a task
    `c`'s history would."""
    old_task(redis_client, "a", payload="A", attempts=2, ttl_ms=3_600_000)
    old_task(redis_client, "b:payload", payload="B-PAYLOAD")
    old_task(redis_client, "b", payload="B")  # its payload SET replaced b:payload's hash
    old_task(redis_client, "c:history", payload="C", attempts=1)
    redis_client.hset(f"{OLD_DEST}{DEST}", mapping={"state": "open", "failures": 3})
    redis_client.zadd(f"{OLD_DEST}{DEST}:inflight", {"a": 9_000})
    redis_client.zadd(f"{OLD_DEST}{DEST}:parked", {"b": 1_000})
    redis_client.zadd("qs:dests", {DEST: 1_000})
    return redis_client


@pytest.fixture
def api(redis_url: str) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(load_settings({"REDIS_URL": redis_url}))) as client:
        yield client


def test_an_empty_redis_gets_the_version_and_nothing_else(redis_client: redis.Redis) -> None:
    report = ensure_layout(redis_client)
    assert report.action is LayoutAction.INITIALISED
    assert redis_client.keys("*") == [K.layout] and redis_client.get(K.layout) == str(LAYOUT_VERSION)
    assert ensure_layout(redis_client).action is LayoutAction.CURRENT


def test_layout_1_is_upgraded_once_colliding_ids_included(
    old_layout: redis.Redis, api: TestClient[Any]
) -> None:
    report = ensure_layout(old_layout, batch=2)  # several SCAN steps and scripts
    assert report.action is LayoutAction.UPGRADED and report.from_version is None
    assert (report.moved, report.dropped) == (4 + 2 + 2, 1)  # payloads, histories, dest zsets; b:payload
    assert old_layout.get(K.layout) == str(LAYOUT_VERSION)

    for task_id, payload, attempts in (("a", "A", 2), ("b", "B", 0), ("c:history", "C", 1)):
        got = api.get(f"/api/v1/tasks/{task_id}")
        assert got.status_code == 200, got.text
        body = got.json()
        assert (body["id"], body["payload"], len(body["attempt_history"])) == (task_id, payload, attempts)
    listed = api.get("/api/v1/tasks").json()["items"]
    assert sorted(t["id"] for t in listed) == ["a", "b", "c:history"]
    # The record layout 1 lost is forgotten everywhere, not left half there.
    assert api.get("/api/v1/tasks/b:payload").status_code == 404
    assert old_layout.zscore(K.index(), "b:payload") is None
    assert old_layout.zscore(K.index(status="pending"), "b:payload") is None
    assert old_layout.zscore(K.index(type_="echo"), "b:payload") is None
    assert not old_layout.exists(K.payload("b:payload"))
    # The expiry moves with the key; destinations keep their slots and parked tasks.
    assert 0 < int(old_layout.pttl(K.history("a"))) <= 3_600_000  # type: ignore[arg-type]
    assert old_layout.zscore(K.dest_inflight(DEST), "a") == 9_000
    assert old_layout.zscore(K.dest_parked(DEST), "b") == 1_000
    assert old_layout.hget(K.dest(DEST), "state") == "open"
    # Every key left has a layout 2 name; none under `task:` is anything but a record.
    for key in old_layout.scan_iter("*"):
        assert K.parse(key) is not None, key
        if K.parse(key)[0] == "task":  # type: ignore[index]
            assert old_layout.type(key) == "hash", key

    again = ensure_layout(old_layout)
    assert again.action is LayoutAction.CURRENT


def test_an_interrupted_upgrade_finishes_on_the_next_start(old_layout: redis.Redis) -> None:
    # As if a first upgrader had moved `a` and died: its lock expired, no version was set.
    old_layout.rename(f"{OLD_TASK}a:payload", K.payload("a"))
    report = ensure_layout(old_layout)
    assert report.action is LayoutAction.UPGRADED and report.moved == 4 + 2 + 2 - 1
    assert old_layout.get(K.payload("a")) == '"A"' and old_layout.llen(K.history("a")) == 2


def test_a_newer_or_unknown_version_refuses_to_start(redis_client: redis.Redis) -> None:
    redis_client.set(K.layout, LAYOUT_VERSION + 1)
    with pytest.raises(LayoutError, match="newer than this release") as caught:
        ensure_layout(redis_client)
    assert caught.value.variable == "REDIS_URL"
    redis_client.set(K.layout, "two")
    with pytest.raises(LayoutError, match="not a layout version"):
        ensure_layout(redis_client)


def test_one_process_upgrades_while_the_others_wait(old_layout: redis.Redis, redis_url: str) -> None:
    start = threading.Barrier(4)
    reports: list[Any] = []

    def start_up() -> None:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            start.wait(timeout=10)
            reports.append(ensure_layout(client, batch=1))
        finally:
            client.close()

    threads = [threading.Thread(target=start_up) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    actions = sorted(r.action.value for r in reports)
    assert actions.count("upgraded") == 1 and len(actions) == 4, actions
    assert set(actions) <= {"upgraded", "waited", "current"}
    assert old_layout.llen(K.history("a")) == 2 and not old_layout.exists(K.layout_lock)


def test_a_held_lock_is_waited_for_bounded_and_taken_over_once_it_expires(old_layout: redis.Redis) -> None:
    old_layout.set(K.layout_lock, "someone-else", px=60_000)
    with pytest.raises(LayoutError, match="another process has been upgrading"):
        ensure_layout(old_layout, wait_s=0.5)
    assert old_layout.get(K.layout) is None  # nothing moved without the lock
    assert old_layout.exists(f"{OLD_TASK}a:payload")

    old_layout.pexpire(K.layout_lock, 300)  # its holder died: the lock runs out
    report = ensure_layout(old_layout, wait_s=10)
    assert report.action is LayoutAction.UPGRADED


def _entry_point(command: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "API_", "WORKER_"))}
    ports = {name: str(free_port()) for name in ("API_PORT", "WORKER_HEALTH_PORT", "WORKER_METRICS_PORT")}
    env |= {"REDIS_URL": redis_url, **ports}
    argv = [sys.executable, "-m", "queue_system", command]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("command", ["api", "worker", "run"])
def test_every_entry_point_refuses_a_newer_layout(
    command: str, redis_client: redis.Redis, redis_url: str
) -> None:
    redis_client.set(K.layout, LAYOUT_VERSION + 1)
    done = _entry_point(command, redis_url)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"key layout {LAYOUT_VERSION + 1}, newer than this release" in done.stderr
