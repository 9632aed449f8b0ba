"""The worker's GET /health and GET /metrics, on real processes and a Redis of each test's own.

Redis stopped and started under a running worker (503, then 200 again, and the worker lives on);
a worker process whose consumers stop while Redis answers (the instance exits non-zero, so its
supervisor restarts it); two worker processes' metrics summed on one scrape.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from queue_system.local.embedded import EmbeddedRedis
from queue_system.worker.master import EXIT_STALLED
from tests.e2e import support
from tests.e2e.support import submit, wait_for_status
from tests.support.receiver import Receiver

pytestmark = pytest.mark.e2e
KINDS = "tests.health_kinds"


@pytest.fixture
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path_factory.mktemp("health-redis"), persist=False) as server:
        yield server


def health(port: int) -> tuple[int, dict[str, Any]]:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    except httpx.TransportError:
        return 0, {}
    return response.status_code, response.json()


def wait_health(proc: support.Proc, port: int, status: int, timeout: float) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> bool:
        nonlocal seen
        if not proc.running:
            raise AssertionError(f"worker exited with {proc.returncode}:\n{proc.tail()}")
        code, seen = health(port)
        return code == status

    if not support.poll(reached, timeout, interval=0.2):
        raise AssertionError(f"no {status} from /health within {timeout}s; last: {seen}\n{proc.tail()}")
    return seen


def container_check(port: int) -> tuple[int, str]:
    """The containers' HEALTHCHECK (docker/healthcheck.py worker) against this worker."""
    done = subprocess.run(
        [sys.executable, str(support.ROOT / "docker" / "healthcheck.py"), "worker"],
        env={"WORKER_HEALTH_PORT": str(port), "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return done.returncode, done.stdout.strip()


def test_health_turns_503_while_redis_is_away_and_200_when_it_returns(
    own_redis: EmbeddedRedis, e2e_logs: Path
) -> None:
    port = support.free_port()
    worker = support.start_worker(
        own_redis.url, e2e_logs, name="worker-health", WORKER_PROCESSES="2", WORKER_HEALTH_PORT=str(port)
    )
    try:
        body = wait_health(worker, port, 200, timeout=15)
        assert body["status"] == "ok" and len(body["processes"]) == 2
        for process in body["processes"]:
            assert process["consumers_alive"] == process["consumers"] > 0
            assert process["threads"]["alive"] == 4 and process["in_flight"] == 0
            assert process["last_heartbeat_age_s"] is not None and process["last_heartbeat_age_s"] < 5

        assert container_check(port) == (0, "healthy")

        own_redis.stop()
        body = wait_health(worker, port, 503, timeout=10)
        assert any("Redis is unreachable" in reason for reason in body["reasons"]), body
        code, out = container_check(port)
        assert code == 1 and "503" in out and "Redis is unreachable" in out

        own_redis.start()
        wait_health(worker, port, 200, timeout=20)
        assert worker.running  # an outage is not a stall: nothing restarts
    finally:
        assert worker.stop() == 0


def test_health_says_redis_is_full_while_it_refuses_writes_and_recovers_after(
    own_redis: EmbeddedRedis, e2e_logs: Path
) -> None:
    port = support.free_port()
    worker = support.start_worker(own_redis.url, e2e_logs, name="worker-full", WORKER_HEALTH_PORT=str(port))
    admin = redis.Redis.from_url(own_redis.url, decode_responses=True)
    try:
        wait_health(worker, port, 200, timeout=15)
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)  # below what Redis holds: every write is refused, reads work
        body = wait_health(worker, port, 503, timeout=10)
        assert any("out of memory" in reason and "OOM" in reason for reason in body["reasons"]), body
        assert not any("unreachable" in reason for reason in body["reasons"]), body

        admin.config_set("maxmemory", 0)
        wait_health(worker, port, 200, timeout=20)
        assert worker.running  # a full Redis is not a stall: a restart would not help
    finally:
        admin.close()
        assert worker.stop() == 0


def test_a_worker_whose_consumers_stop_exits_non_zero(own_redis: EmbeddedRedis, e2e_logs: Path) -> None:
    port = support.free_port()
    env = {"TASK_MODULES": KINDS, "WORKER_HEALTH_PORT": str(port)}
    with support.stack(own_redis.url, e2e_logs, **env) as running:
        wait_health(running.worker, port, 200, timeout=15)
        with httpx.Client(base_url=running.base_url, timeout=10) as api:
            task_id = submit(api, {"type": "stop_consumers", "payload": "now"})
            assert wait_for_status(api, task_id, "completed")["result"] > 0
        # The process lives on but consumes nothing: the master sees it and stops the instance.
        assert running.worker.wait(timeout=30) == EXIT_STALLED
        log = running.worker.log()
        assert "worker stalled" in log and "died" in log, running.worker.tail()


def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert response.status_code == 200
    out = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_of_two_worker_processes_are_summed_on_one_scrape(
    own_redis: EmbeddedRedis, e2e_logs: Path
) -> None:
    port = support.free_port()
    env = {"TASK_MODULES": KINDS, "WORKER_PROCESSES": "2", "WORKER_METRICS_PORT": str(port)}
    n = 40
    with (
        Receiver() as receiver,
        support.stack(own_redis.url, e2e_logs, **env) as running,
        httpx.Client(base_url=running.base_url, timeout=10) as api,
    ):
        ids = [submit(api, {"type": "whoami", "payload": str(i)}) for i in range(n)]
        hook = submit(api, {"url": receiver.url("/ok")})
        pids = {wait_for_status(api, task_id, "completed", timeout=30)["result"] for task_id in ids}
        wait_for_status(api, hook, "completed")
        assert len(pids) == 2, f"both processes must have run some: {pids}"

        got = samples(port)

        def value(name: str, **labels: str) -> float:
            return got.get((name, tuple(sorted(labels.items()))), 0.0)

        def flushed() -> bool:  # each process writes its tally every second (worker/metrics.py)
            nonlocal got
            got = samples(port)
            # Every count asserted below has reached its total (read earlier, one written a
            # moment after another was still short); `>=`, so a count past it still fails below.
            return (
                value("queue_system_worker_deliveries_total", status_class="2xx") >= 1
                and value("queue_system_worker_attempts_total", type="whoami", outcome="success") >= n
                and value("queue_system_worker_tasks_finished_total", type="whoami", outcome="completed") >= n
                and value("queue_system_worker_attempt_duration_seconds_count", type="whoami") >= n
            )

        assert support.poll(flushed, timeout=10), got

        # Each process ran part of the batch; the scrape shows the whole.
        assert value("queue_system_worker_attempts_total", type="whoami", outcome="success") == n
        assert value("queue_system_worker_tasks_finished_total", type="whoami", outcome="completed") == n
        assert value("queue_system_worker_attempt_duration_seconds_count", type="whoami") == n
        assert value("queue_system_worker_attempt_duration_seconds_bucket", type="whoami", le="0.025") == 0
        assert value("queue_system_worker_deliveries_total", status_class="2xx") == 1
        assert value("queue_system_worker_in_flight") == 0
        assert value("queue_system_worker_recovered_total") == 0


def test_a_sigterm_as_soon_as_a_process_is_ready_stops_everything_gracefully(
    own_redis: EmbeddedRedis, e2e_logs: Path
) -> None:
    """The master's own threads (health, metrics, monitor) block the signals Dramatiq handles: a
    SIGTERM before Dramatiq's handlers are in place waits for them instead of killing the master
    and orphaning its worker processes."""
    worker = support.launch_worker(own_redis.url, e2e_logs, name="worker-early-term", WORKER_PROCESSES="2")
    try:
        worker.expect_log("worker ready", count=1, timeout=30)
        children = support.descendants(worker.pid)
        worker.send(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, worker.tail()
        assert support.poll(lambda: not any(support.alive(pid) for pid in children), timeout=10), children
    finally:
        worker.stop(5)


def test_a_hung_worker_process_is_killed_and_the_worker_exits_non_zero(
    own_redis: EmbeddedRedis, e2e_logs: Path
) -> None:
    """A process that stops altogether (SIGSTOP here; a deadlock in production) stops reporting:
    the master kills it and the instance exits non-zero."""
    port = support.free_port()
    worker = support.start_worker(
        own_redis.url, e2e_logs, name="worker-hung", WORKER_PROCESSES="2", WORKER_HEALTH_PORT=str(port)
    )
    try:
        body = wait_health(worker, port, 200, timeout=15)
        stuck = body["processes"][0]["pid"]
        os.kill(stuck, signal.SIGSTOP)
        assert worker.wait(timeout=30) == EXIT_STALLED, worker.tail()
        assert f"process {stuck} has not reported" in worker.log()
        assert not support.alive(stuck)
    finally:
        worker.stop(5)
