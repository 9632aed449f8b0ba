"""Schedules with real processes: two worker masters fire an `every: 1s` schedule once per tick
(no tick twice, none missed); after the workers were stopped across ticks, `catch_up: latest`
fires once for the ticks missed; a paused schedule fires nothing until resumed (and then not the
ticks paused through); a schedule deleted while firing creates no task after the DELETE answered,
and the tasks it already created stay and complete; an `overlap: skip` schedule with tasks slower
than its period never has two unfinished and counts the ticks it skipped.

Time: the workers start and stop in parallel, and are kept for the next test (`Workers.ensure`);
the pause and the delete are watched over the same window."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.support import Proc, api_alone, free_port, launch_worker, wait_worker_ready

pytestmark = pytest.mark.e2e

QUIET_S = 2.5  # a paused or deleted `every: 1s` schedule is watched this long: two ticks and more


class Workers:
    """The worker masters of this module (one process each), started and stopped together."""

    def __init__(self, redis_url: str, logs: Path) -> None:
        self.redis_url = redis_url
        self.logs = logs
        self.running: list[Proc] = []
        self.metrics_ports: list[int] = []
        self._serial = itertools.count()

    def ensure(self, n: int) -> None:
        """At least `n` running (started in parallel: each takes a second or two to boot)."""
        ports = [free_port() for _ in range(n - len(self.running))]
        procs = [
            launch_worker(
                self.redis_url,
                self.logs,
                name=f"worker-sched-{next(self._serial)}",
                WORKER_METRICS_PORT=str(port),
            )
            for port in ports
        ]
        self.running += procs
        self.metrics_ports += ports
        for proc in procs:
            wait_worker_ready(proc)

    def stop(self) -> None:
        with ThreadPoolExecutor(max_workers=max(1, len(self.running))) as pool:
            list(pool.map(lambda p: p.stop(), self.running))
        self.running, self.metrics_ports = [], []

    def firings(self) -> float:
        """`queue_system_worker_schedule_firings_total{timing="every"}`, summed over the running."""
        return self.counter("queue_system_worker_schedule_firings_total")

    def counter(self, name: str) -> float:
        """The counter `name`'s `timing="every"` sample, summed over the running."""
        total = 0.0
        for port in self.metrics_ports:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            found = re.search(rf'^{name}\{{timing="every"\}} (\S+)$', text, re.M)
            total += float(found.group(1)) if found else 0.0
        return total


@pytest.fixture(scope="module")
def schedules_api(redis_url: str, e2e_logs: Path) -> Iterator[httpx.Client]:
    with api_alone(redis_url, e2e_logs, name="api-schedules") as client:
        yield client


@pytest.fixture(scope="module")
def workers(redis_url: str, e2e_logs: Path) -> Iterator[Workers]:
    running = Workers(redis_url, e2e_logs)
    try:
        yield running
    finally:
        running.stop()


def _tasks(api: httpx.Client, sid: str) -> list[dict[str, object]]:
    items: list[dict[str, object]] = api.get(
        "/api/v1/tasks", params={"schedule_id": sid, "limit": 500}
    ).json()["items"]
    assert all(t["schedule_id"] == sid for t in items)
    return items


def _ticks(api: httpx.Client, sid: str) -> list[int]:
    return sorted(int(str(t["id"]).rsplit("@", 1)[1]) for t in _tasks(api, sid))


def _until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)  # a bounded poll of the API, not a synchronisation
    raise AssertionError("timed out")


def _every_second(api: httpx.Client) -> str:
    created = api.post("/api/v1/schedules", json={"task": {"type": "echo", "payload": "tick"}, "every": "1s"})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_every_second_fires_once_per_tick_across_two_workers_and_catches_up(
    schedules_api: httpx.Client, workers: Workers
) -> None:
    api = schedules_api
    workers.stop()  # only the two started here fire: then none, across ticks
    workers.ensure(2)
    sid = _every_second(api)
    _until(lambda: len(_ticks(api, sid)) >= 11, 30)  # 10 s of ticks: every one once, none missed
    ticks = _ticks(api, sid)
    assert len(ticks) == len(set(ticks))
    assert [b - a for a, b in itertools.pairwise(ticks)] == [1000] * (len(ticks) - 1)
    workers.stop()
    stopped_at = _ticks(api, sid)[-1]
    _until(lambda: time.time() * 1000 > stopped_at + 3500, 10)  # three ticks or more go by unfired
    workers.ensure(1)
    _until(lambda: _ticks(api, sid)[-1] > stopped_at + 3000, 20)
    after = [t for t in _ticks(api, sid) if t > stopped_at]
    # latest: the missed ticks fired once together (one task, the newest), then on time again.
    assert after[0] - stopped_at >= 3000
    assert all(b - a == 1000 for a, b in itertools.pairwise(after))
    assert api.delete(f"/api/v1/schedules/{sid}").status_code == 204


def test_paused_fires_nothing_until_resumed_and_deleted_while_firing_creates_nothing_after(
    schedules_api: httpx.Client, workers: Workers
) -> None:
    api = schedules_api
    workers.ensure(1)
    paused, deleted = _every_second(api), _every_second(api)
    _until(lambda: len(_ticks(api, paused)) >= 2 and len(_ticks(api, deleted)) >= 2, 10)
    assert workers.firings() >= 4  # the worker's metrics count each firing it won

    answer = api.patch(f"/api/v1/schedules/{paused}", json={"paused": True})
    assert answer.status_code == 200 and answer.json()["next_run_at"] is None
    paused_at, before_pause = time.time() * 1000, _ticks(api, paused)
    assert api.delete(f"/api/v1/schedules/{deleted}").status_code == 204
    before_delete = _ticks(api, deleted)
    # Watched over the same window: not a tick of either after its answer.
    window_end = time.monotonic() + QUIET_S
    while time.monotonic() < window_end:
        assert _ticks(api, paused) == before_pause
        assert _ticks(api, deleted) == before_delete
        time.sleep(0.2)

    resuming_at = time.time() * 1000
    answer = api.patch(f"/api/v1/schedules/{paused}", json={"paused": False})
    assert answer.status_code == 200 and answer.json()["next_run_at"] is not None
    _until(lambda: len(_ticks(api, paused)) > len(before_pause), 5)
    new = [t for t in _ticks(api, paused) if t not in before_pause]
    # From the next tick after the resume: none of the ticks paused through.
    assert all(t > resuming_at for t in new), (paused_at, resuming_at, new)

    # The deleted schedule's tasks stay and run to the end as any task does.
    def done() -> bool:
        return all(t["status"] == "completed" for t in _tasks(api, deleted))

    _until(done, 10)
    assert _ticks(api, deleted) == before_delete
    assert api.get(f"/api/v1/schedules/{deleted}").status_code == 404
    assert api.delete(f"/api/v1/schedules/{paused}").status_code == 204


def test_overlap_skip_waits_for_the_previous_task(schedules_api: httpx.Client, workers: Workers) -> None:
    """`every: 1s` with 2.5 s tasks: with skip, never two of its tasks unfinished at once; the ticks
    while one runs are skipped and counted, and the next fires once it completed."""
    api = schedules_api
    workers.ensure(1)
    body = {"task": {"type": "slow", "payload": {"seconds": 2.5}}, "every": "1s", "overlap": "skip"}
    created = api.post("/api/v1/schedules", json=body)
    assert created.status_code == 201, created.text
    sid = str(created.json()["id"])

    def watched() -> bool:
        tasks = _tasks(api, sid)
        unfinished = [t for t in tasks if t["status"] not in ("completed", "failed", "cancelled")]
        assert len(unfinished) <= 1, unfinished
        return len(tasks) >= 2 and api.get(f"/api/v1/schedules/{sid}").json()["skipped_ticks"] >= 2

    _until(watched, 15)
    ticks = _ticks(api, sid)
    assert ticks[1] - ticks[0] >= 2000  # the ticks while the first ran did not fire
    assert api.delete(f"/api/v1/schedules/{sid}").status_code == 204
    assert workers.counter("queue_system_worker_schedule_ticks_skipped_total") >= 2
