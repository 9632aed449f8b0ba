"""Schedules with real processes: two worker masters fire an `every: 1s` schedule once per tick
(no tick twice, none missed), and after the workers were stopped across ticks, `catch_up: latest`
fires once for the ticks missed."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.support import api_alone, start_worker

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def schedules_api(redis_url: str, e2e_logs: Path) -> Iterator[httpx.Client]:
    with api_alone(redis_url, e2e_logs, name="api-schedules") as client:
        yield client


def _ticks(api: httpx.Client, sid: str) -> list[int]:
    items = api.get("/api/v1/tasks", params={"schedule_id": sid, "limit": 500}).json()["items"]
    assert all(t["schedule_id"] == sid for t in items)
    return sorted(int(t["id"].rsplit("@", 1)[1]) for t in items)


def _until(check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)  # a bounded poll of the API, not a synchronisation
    raise AssertionError("timed out")


def test_every_second_fires_once_per_tick_across_two_workers_and_catches_up(
    schedules_api: httpx.Client, redis_url: str, e2e_logs: Path
) -> None:
    api = schedules_api
    env = {"WORKER_PROCESSES": "1"}
    workers = [start_worker(redis_url, e2e_logs, name=f"worker-sched-{i}", **env) for i in range(2)]
    try:
        created = api.post(
            "/api/v1/schedules", json={"task": {"type": "echo", "payload": "tick"}, "every": "1s"}
        )
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        _until(lambda: len(_ticks(api, sid)) >= 6, 20)
        ticks = _ticks(api, sid)
        assert len(ticks) == len(set(ticks))
        assert [b - a for a, b in itertools.pairwise(ticks)] == [1000] * (len(ticks) - 1)
    finally:
        for w in workers:
            w.stop()
    stopped_at = _ticks(api, sid)[-1]
    _until(lambda: time.time() * 1000 > stopped_at + 3500, 10)  # three ticks or more go by unfired
    worker = start_worker(redis_url, e2e_logs, name="worker-sched-again", **env)
    try:
        _until(lambda: _ticks(api, sid)[-1] > stopped_at + 3000, 20)
        after = [t for t in _ticks(api, sid) if t > stopped_at]
        # latest: the missed ticks fired once together (one task, the newest), then on time again.
        assert after[0] - stopped_at >= 3000
        assert all(b - a == 1000 for a, b in itertools.pairwise(after))
    finally:
        worker.stop()
    assert api.delete(f"/api/v1/schedules/{sid}").status_code == 204
