"""A stranger's pause/resume storm with real processes: two worker processes deliver webhooks while
one client submits 300 of them and another pauses and resumes the queue as fast as it can. Every
task arrives exactly once and completes on its first attempt: a pause never loses a task nor lets
one run twice, whatever it races (a submit, a fetch, a claim, a release)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.support import api_alone, start_worker, submit
from tests.support.receiver import Receiver

pytestmark = pytest.mark.e2e

N = 300


@pytest.fixture(scope="module")
def storm_api(redis_url: str, e2e_logs: Path) -> Iterator[httpx.Client]:
    with api_alone(redis_url, e2e_logs, name="api-storm") as client:
        yield client


def test_a_pause_resume_storm_loses_and_doubles_nothing(
    storm_api: httpx.Client, redis_url: str, e2e_logs: Path, receiver: Receiver
) -> None:
    api = storm_api
    worker = start_worker(redis_url, e2e_logs, name="worker-storm", WORKER_PROCESSES="2")
    submitted = threading.Event()
    toggles = [0]

    def storm() -> None:
        with httpx.Client(base_url=str(api.base_url), timeout=10) as other:
            while not submitted.is_set():
                for action in ("pause", "resume"):
                    assert other.post(f"/api/v1/queues/default/{action}").status_code == 200
                    toggles[0] += 1

    stormer = threading.Thread(target=storm, daemon=True)
    try:
        stormer.start()
        ids = [
            submit(api, {"type": "webhook", "payload": {"url": receiver.url(f"/hook/{i}")}}) for i in range(N)
        ]
        submitted.set()
        stormer.join(timeout=10)
        assert api.post("/api/v1/queues/default/resume").status_code == 200
        assert receiver.wait_for(N, timeout=60), f"{receiver.count} of {N} delivered ({toggles[0]} toggles)"
        assert not receiver.wait_for(N + 1, timeout=1.5), "a task was delivered twice"
    finally:
        submitted.set()
        worker.stop()
    print(f"{N} tasks, {toggles[0]} pause/resume calls racing them")
    assert toggles[0] >= 20, "the storm did not overlap the submits"
    assert Counter(r.path for r in receiver.requests) == Counter(f"/hook/{i}" for i in range(N))
    for tid in ids:
        task = api.get(f"/api/v1/tasks/{tid}").json()
        assert (task["status"], task["attempts"]) == ("completed", 1), task
    state = api.get("/api/v1/queues/default").json()
    assert (state["paused"], state["held"], state["depth"]) == (False, 0, 0), state
