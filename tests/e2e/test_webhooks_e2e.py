"""Webhook delivery end to end: the API and worker processes, Redis, and a real HTTP receiver.

The module's worker retries every 300 ms and times requests out after 1 s (support.BASE_ENV).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from queue_system.local.embedded import EmbeddedRedis
from tests.e2e.support import (
    free_port,
    get_task,
    outcomes,
    poll,
    stack,
    submit,
    timestamp,
    wait_for_status,
    wait_for_task,
)
from tests.support.receiver import HANG, Receiver, Reply

pytestmark = pytest.mark.e2e

RETRY_INTERVAL_S = 0.3


def hook(url: str, **extra: Any) -> dict[str, Any]:
    return {"url": url, "method": "POST", **extra}


def test_curl_style_submit_is_delivered_once(api: httpx.Client, receiver: Receiver) -> None:
    body = {
        "url": receiver.url("/webhook"),
        "method": "POST",
        "headers": {"X-Custom-Header": "test"},
        "body": '{"test": "data"}',
    }
    response = api.post("/api/v1/tasks", json=body)

    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"/api/v1/tasks/{created['id']}"
    assert created["type"] == "webhook"
    task = wait_for_status(api, created["id"], "completed")
    assert task["attempts"] == 1
    assert task["last_error"] is None
    [attempt] = task["attempt_history"]
    assert attempt["status_code"] == 200 and attempt["outcome"] == "success"
    assert attempt["response_body"] == "ok"
    [request] = receiver.requests
    assert request.method == "POST"
    assert request.path == "/webhook"
    assert request.headers["x-custom-header"] == "test"
    assert request.body == b'{"test": "data"}'
    # Nothing else follows a success.
    assert not receiver.wait_for(2, timeout=3 * RETRY_INTERVAL_S)


def test_typed_form_completes(api: httpx.Client, receiver: Receiver) -> None:
    payload = {"url": receiver.url("/typed"), "method": "PUT", "body": {"n": 1}}

    task_id = submit(api, {"type": "webhook", "payload": payload})

    task = wait_for_status(api, task_id, "completed")
    assert task["type"] == "webhook" and task["attempts"] == 1
    [request] = receiver.requests
    assert (request.method, request.path) == ("PUT", "/typed")
    assert request.headers["content-type"] == "application/json"
    assert request.body == b'{"n":1}'


def test_server_errors_are_retried_until_success(api: httpx.Client, receiver: Receiver) -> None:
    receiver.program([500, 500], default=200)

    task_id = submit(api, hook(receiver.url()))

    task = wait_for_status(api, task_id, "completed")
    assert task["attempts"] == 3
    assert outcomes(task) == ["transient", "transient", "success"]
    assert [a["status_code"] for a in task["attempt_history"]] == [500, 500, 200]
    assert [a["n"] for a in task["attempt_history"]] == [1, 2, 3]
    assert receiver.count == 3
    # Fixed interval: each retry waits at least WORKER_RETRY_INTERVAL after the previous attempt.
    first, second, third = (r.at for r in receiver.requests)
    assert second - first >= RETRY_INTERVAL_S - 0.05
    assert third - second >= RETRY_INTERVAL_S - 0.05


def test_client_error_fails_at_once(api: httpx.Client, receiver: Receiver) -> None:
    receiver.program(default=404)

    task_id = submit(api, hook(receiver.url()))

    task = wait_for_status(api, task_id, "failed")
    assert task["attempts"] == 1
    assert "404" in task["last_error"]
    assert outcomes(task) == ["permanent"]
    assert task["completed_at"] is not None
    assert not receiver.wait_for(2, timeout=3 * RETRY_INTERVAL_S)


def test_receiver_that_never_answers_times_out_and_is_retried(api: httpx.Client) -> None:
    # Own receiver: its hanging handlers are released when it closes at the end of the test.
    with Receiver(default=HANG) as hanging:
        task_id = submit(api, hook(hanging.url()))

        task = wait_for_task(
            api,
            task_id,
            lambda t: t["status"] == "retrying" and t["attempts"] >= 2,
            timeout=15,
            what="second failed attempt",
        )
        first = task["attempt_history"][0]
        assert first["outcome"] == "transient"
        assert first["error"] == "timed out after 1 s waiting for the response"
        assert "status_code" not in first  # no response, no code (omitted when empty)
        # The request timeout (1 s) bounded the attempt.
        assert 900 <= first["duration_ms"] < 5_000
        assert task["last_error"].startswith("timed out after 1 s waiting for the response")
        assert hanging.count >= 2


def test_retry_after_is_honoured(api: httpx.Client, receiver: Receiver) -> None:
    receiver.program([Reply(429, headers={"Retry-After": "2"})], default=200)

    task_id = submit(api, hook(receiver.url()))

    task = wait_for_status(api, task_id, "completed", timeout=15)
    assert outcomes(task) == ["transient", "success"]
    assert task["attempt_history"][0]["status_code"] == 429
    first, second = (timestamp(a["started_at"]) for a in task["attempt_history"])
    assert second - first >= 2.0, "Retry-After: 2 must win over the 300 ms retry interval"
    assert second - first < 5.0
    arrivals = [r.at for r in receiver.requests]
    assert len(arrivals) == 2 and arrivals[1] - arrivals[0] >= 1.95


def test_retry_window_exhausted_fails(
    tmp_path_factory: pytest.TempPathFactory, e2e_logs: Path, receiver: Receiver
) -> None:
    # Its own Redis, API and worker: the module's worker (24 h window) must not take these tasks.
    receiver.program(default=503)
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis-max-age"), persist=False)
    url = server.start()
    try:
        with (
            stack(url, e2e_logs, WORKER_RETRY_MAX_AGE="1s") as short,
            httpx.Client(base_url=short.base_url, timeout=10) as client,
        ):
            task_id = submit(client, hook(receiver.url()))

            task = wait_for_status(client, task_id, "failed", timeout=15)

            assert task["attempts"] >= 2
            assert set(outcomes(task)) == {"transient"}
            assert all(a["status_code"] == 503 for a in task["attempt_history"])
            assert "retry window exhausted" in task["last_error"]
            # Retries are only scheduled inside the window (1 s after creation; slack for polling).
            created = timestamp(task["created_at"])
            for retry in task["attempt_history"][1:]:
                assert timestamp(retry["started_at"]) - created <= 1.5, task["attempt_history"]
            count = receiver.count
            assert not receiver.wait_for(count + 1, timeout=3 * RETRY_INTERVAL_S)
    finally:
        server.stop()


def test_delete_of_retrying_task_stops_deliveries(api: httpx.Client, receiver: Receiver) -> None:
    receiver.program(default=500)
    task_id = submit(api, hook(receiver.url()))
    assert receiver.wait_for(1, timeout=10)

    # Delete while the task waits for its next attempt, well before that attempt is due: an
    # attempt already running when the record goes away would still reach the receiver.
    def waiting_with_margin(task: dict[str, Any]) -> bool:
        due = task["next_attempt_at"]
        return task["status"] == "retrying" and due is not None and timestamp(due) - time.time() > 0.15

    wait_for_task(api, task_id, waiting_with_margin, timeout=10, what="retrying with time to spare")
    response = api.delete(f"/api/v1/tasks/{task_id}")

    assert response.status_code == 204
    assert api.get(f"/api/v1/tasks/{task_id}").status_code == 404
    seen = receiver.count
    assert not receiver.wait_for(seen + 1, timeout=5 * RETRY_INTERVAL_S), "delivered after DELETE"
    assert api.delete(f"/api/v1/tasks/{task_id}").status_code == 404


def test_connection_refused_is_retried(api: httpx.Client) -> None:
    closed_port = free_port()  # bound then released: nothing listens there

    task_id = submit(api, hook(f"http://127.0.0.1:{closed_port}/hook"))

    task = wait_for_task(
        api,
        task_id,
        lambda t: t["status"] == "retrying" and t["attempts"] >= 2,
        timeout=10,
        what="two failed attempts",
    )
    first = task["attempt_history"][0]
    assert first["outcome"] == "transient"
    assert "status_code" not in first  # no response, no code (omitted when empty)
    assert first["error"].startswith("connection refused by 127.0.0.1:")
    assert "Connect" in first["detail"]  # the library's own account stays in the history
    assert task["last_error"]
    assert task["next_attempt_at"] is not None
    assert get_task(api, task_id)["status"] in ("retrying", "processing")


def test_health_and_ready(api: httpx.Client) -> None:
    assert api.get("/health").json() == {"status": "ok"}
    assert api.get("/ready").json()["status"] == "ready"
    # The module's worker: its heartbeat is back within 100 ms of the test's flush of the database.
    assert poll(lambda: api.get("/ready").json()["worker_processes"] >= 1, timeout=5)
