"""Queue pause with real processes: a paused queue accepts 20 webhooks and delivers none for
longer than the workers' claim interval (its worker fetches and holds them: no spin), a worker
restarted while paused delivers none either, and after resume all 20 arrive, each exactly once."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.support import api_alone, poll, start_worker, submit
from tests.support.receiver import Receiver

pytestmark = pytest.mark.e2e

N = 20
# Longer than everything that could start a claim: the poll interval (50 ms), a retry (300 ms).
QUIET_S = 2.0


@pytest.fixture(scope="module")
def queues_api(redis_url: str, e2e_logs: Path) -> Iterator[httpx.Client]:
    with api_alone(redis_url, e2e_logs, name="api-queues") as client:
        yield client


def _queue(api: httpx.Client) -> dict[str, Any]:
    reply = api.get("/api/v1/queues/default")
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def test_paused_queue_delivers_nothing_across_a_worker_restart_then_all_once(
    queues_api: httpx.Client, redis_url: str, e2e_logs: Path, receiver: Receiver
) -> None:
    api = queues_api
    worker = start_worker(redis_url, e2e_logs, name="worker-queues-1")
    try:
        assert api.post("/api/v1/queues/default/pause").json()["paused"] is True
        ids = [
            submit(api, {"type": "webhook", "payload": {"url": receiver.url(f"/hook/{i}")}}) for i in range(N)
        ]
        # The worker fetches each message once and holds its task: the queue's depth is all held.
        assert poll(lambda: _queue(api)["held"] == N, timeout=10), _queue(api)
        assert not receiver.wait_for(1, timeout=QUIET_S), "delivered while paused"
    finally:
        worker.stop()
    worker = start_worker(redis_url, e2e_logs, name="worker-queues-2")
    try:
        assert not receiver.wait_for(1, timeout=QUIET_S), "delivered while paused, after a restart"
        state = _queue(api)
        assert (state["paused"], state["held"], state["depth"]) == (True, N, N), state
        assert state["oldest_age_ms"] >= 2 * QUIET_S * 1000
        resumed_at = time.monotonic()
        resumed = api.post("/api/v1/queues/default/resume").json()
        assert (resumed["paused"], resumed["released"]) == (False, N), resumed
        assert receiver.wait_for(N, timeout=15), f"{receiver.count} of {N} delivered after resume"
        first = min(r.at for r in receiver.requests) - resumed_at
        last = max(r.at for r in receiver.requests) - resumed_at
        print(f"first delivery {first * 1000:.0f} ms after the resume, all {N} in {last * 1000:.0f} ms")
        assert first < 1.0, f"the first delivery came {first:.2f} s after the resume"
        assert not receiver.wait_for(N + 1, timeout=1.0), "a task was delivered twice"
    finally:
        worker.stop()
    paths = Counter(r.path for r in receiver.requests)
    assert paths == Counter(f"/hook/{i}" for i in range(N))
    for tid in ids:
        task = api.get(f"/api/v1/tasks/{tid}").json()
        assert (task["status"], task["attempts"]) == ("completed", 1), task
    assert _queue(api)["depth"] == 0
