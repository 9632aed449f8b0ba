"""Process lifecycle end to end: graceful stop, a killed worker, and `cmd/run.py` (make run).

These tests start and stop workers themselves; the module's API serves them all.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e import support
from tests.e2e.support import (
    Proc,
    api_alone,
    get_task,
    outcomes,
    start_worker,
    submit,
    wait_for_status,
)
from tests.support.receiver import HANG, Receiver, Reply

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lifecycle_api(redis_url: str, e2e_logs: Path) -> Iterator[httpx.Client]:
    with api_alone(redis_url, e2e_logs, name="api-lifecycle") as client:
        yield client


def test_sigterm_finishes_the_delivery_in_flight_and_leaves_the_rest_queued(
    lifecycle_api: httpx.Client, redis_url: str, e2e_logs: Path, workers: list[Proc]
) -> None:
    api = lifecycle_api
    # One delivery at a time: the next task's thread waits for room in the delivery loop (claimed),
    # the third waits in Dramatiq's buffer; SIGTERM gives back the first and requeues the second.
    env = {"WORKER_CONCURRENCY": "1", "WORKER_MAX_INFLIGHT": "1", "WORKER_REQUEST_TIMEOUT": "10s"}
    workers.append(start_worker(redis_url, e2e_logs, name="worker-sigterm", **env))
    with Receiver([Reply(200, delay_s=1.5)], default=200) as receiver:
        in_flight = submit(api, {"url": receiver.url("/in-flight"), "method": "POST"})
        assert receiver.wait_for(1, timeout=10)
        queued = [submit(api, {"url": receiver.url(f"/queued-{i}"), "method": "POST"}) for i in (1, 2)]
        assert get_task(api, in_flight)["status"] == "processing"

        workers[0].send(signal.SIGTERM)

        assert workers[0].wait(timeout=15) == 0
        task = get_task(api, in_flight)
        assert task["status"] == "completed", task
        assert task["attempts"] == 1 and outcomes(task) == ["success"]
        assert [r.path for r in receiver.requests] == ["/in-flight"]
        for task_id in queued:
            waiting = get_task(api, task_id)
            assert (waiting["status"], waiting["attempts"]) == ("pending", 0), waiting

        workers.append(start_worker(redis_url, e2e_logs, name="worker-after-sigterm", **env))

        for task_id in queued:
            done = wait_for_status(api, task_id, "completed", timeout=15)
            assert done["attempts"] == 1
        assert sorted(r.path for r in receiver.requests) == ["/in-flight", "/queued-1", "/queued-2"]


def test_sigkill_mid_delivery_is_recovered_after_the_lease(
    lifecycle_api: httpx.Client, redis_url: str, e2e_logs: Path, workers: list[Proc]
) -> None:
    api = lifecycle_api
    # The lease is written by the worker that claims the task: both use the short one.
    env = {"WORKER_LEASE": "2s", "WORKER_REQUEST_TIMEOUT": "30s"}
    workers.append(start_worker(redis_url, e2e_logs, name="worker-killed", **env))
    with Receiver([HANG], default=200) as receiver:
        task_id = submit(api, {"url": receiver.url("/hook"), "method": "POST"})
        assert receiver.wait_for(1, timeout=10)
        assert get_task(api, task_id)["status"] == "processing"

        workers[0].kill_group(signal.SIGKILL)  # the dramatiq CLI and its forked worker process
        assert workers[0].wait(timeout=10) == -signal.SIGKILL
        assert get_task(api, task_id)["status"] == "processing"  # nobody knows yet

        workers.append(start_worker(redis_url, e2e_logs, name="worker-recovering", **env))

        task = wait_for_status(api, task_id, "completed", timeout=20)
        assert outcomes(task) == ["lost", "success"]
        lost = task["attempt_history"][0]
        assert lost["n"] == 1 and "lease expired" in lost["error"]
        assert task["attempts"] == 2
        assert receiver.count == 2


def test_run_py_starts_everything_and_stops_on_sigint(
    tmp_path_factory: pytest.TempPathFactory, e2e_logs: Path
) -> None:
    data_dir = tmp_path_factory.mktemp("run")  # short: the Redis unix socket lives under it
    port = support.free_port()
    env = support.child_env(DATA_DIR=str(data_dir), API_PORT=str(port))
    assert "REDIS_URL" not in env and "REDIS_ADDR" not in env
    base_url = f"http://127.0.0.1:{port}"
    with support.local_run("run", env, e2e_logs) as local:
        run = local.proc
        support.wait_ready(run, base_url, timeout=40)
        with Receiver() as receiver, httpx.Client(base_url=base_url, timeout=10) as client:
            task_id = submit(client, {"url": receiver.url("/run"), "method": "POST", "body": "hi"})
            task = wait_for_status(client, task_id, "completed", timeout=20)
            assert task["attempts"] == 1
            [request] = receiver.requests
            assert (request.path, request.body) == ("/run", b"hi")
        # Now that the worker has delivered: redis-server, the API, the dramatiq CLI and its fork.
        children = local.note_children()
        assert len(children) >= 4, children

        run.send(signal.SIGINT)

        assert run.wait(timeout=25) == 0, run.tail()
        assert support.poll(lambda: not any(support.alive(pid) for pid in children), timeout=5), [
            pid for pid in children if support.alive(pid)
        ]
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base_url}/health", timeout=2)
        assert (data_dir / "redis").is_dir()
        assert any((data_dir / "redis").iterdir())


def test_sigterm_interrupts_a_slow_task_which_stays_retryable(
    lifecycle_api: httpx.Client, redis_url: str, e2e_logs: Path, workers: list[Proc]
) -> None:
    api = lifecycle_api
    workers.append(start_worker(redis_url, e2e_logs, name="worker-slow", WORKER_CONCURRENCY="1"))
    task_id = submit(api, {"type": "slow", "payload": {"seconds": 60}})
    wait_for_status(api, task_id, "processing", timeout=10)

    workers[0].send(signal.SIGTERM)

    assert workers[0].wait(timeout=15) == 0  # well before the 60 s sleep would end
    task = get_task(api, task_id)
    assert task["status"] == "retrying", task
    assert task["last_error"].startswith("interrupted by worker shutdown")
    assert outcomes(task) == ["transient"]
