"""Redis restarts under a running API and worker: nothing accepted is lost, the state stays consistent.

Each test has its own persistent embedded Redis (append-only file, `appendfsync everysec`, as
`make run` uses), and its own API and worker, so killing Redis touches nothing else.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from queue_system.local.embedded import EmbeddedRedis
from tests.e2e import support
from tests.e2e.support import get_task, outcomes, submit, wait_for_status
from tests.support.receiver import Receiver, Reply

pytestmark = pytest.mark.e2e


@pytest.fixture
def durable_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path_factory.mktemp("durable"), persist=True) as server:
        yield server


def _consistent(url: str, task_ids: list[str]) -> None:
    """Every task completed; no lease, schedule entry, index entry or Dramatiq message left over."""
    with redis.Redis.from_url(url, decode_responses=True) as client:
        for task_id in task_ids:
            assert client.hget(f"qs:task:{task_id}", "status") == "completed", task_id
        assert client.zcard("qs:leases") == 0
        assert client.zcard("qs:schedule") == 0
        for status in ("pending", "processing", "retrying", "scheduled"):
            assert client.zcard(f"qs:idx:status:{status}") == 0, status
        assert client.zcard("qs:idx:status:completed") == len(task_ids)

        def no_messages() -> bool:
            return int(client.hlen("qs:dramatiq:default.msgs")) == 0

        assert support.poll(no_messages, timeout=10)


@pytest.mark.parametrize("how", ["crash", "shutdown"])
def test_tasks_survive_a_redis_restart_mid_delivery(
    durable_redis: EmbeddedRedis, e2e_logs: Path, how: str
) -> None:
    url = durable_redis.url
    # One thread, so the later tasks wait (in Redis or the prefetch buffer) while the first is
    # delivered.
    env = {"WORKER_CONCURRENCY": "1", "WORKER_REQUEST_TIMEOUT": "10s"}
    with (
        Receiver([Reply(200, delay_s=1.5)], default=200) as receiver,
        support.stack(url, e2e_logs, **env) as running,
        httpx.Client(base_url=running.base_url, timeout=10) as api,
    ):
        in_flight = submit(api, {"url": receiver.url("/in-flight")})
        assert receiver.wait_for(1, timeout=10)
        queued = [submit(api, {"url": receiver.url(f"/queued-{i}")}) for i in range(5)]

        if how == "crash":
            durable_redis.kill()  # SIGKILL: only what reached the AOF survives
        else:
            durable_redis.stop()  # SHUTDOWN: Redis saves and exits
        # While Redis is away a submit is refused, whole: a 503 problem, nothing half-written.
        refused = api.post("/api/v1/tasks", json={"url": receiver.url("/refused")})
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        # The delivery in flight ends while Redis is away: the worker holds its outcome.
        running.worker.expect_log("Redis unavailable while recording the attempt", timeout=10)
        durable_redis.start()

        # Every accepted task completes (at least once); the refused one was never stored
        # (`_consistent` counts the completed tasks).
        for task_id in [in_flight, *queued]:
            task = wait_for_status(api, task_id, "completed", timeout=30)
            assert outcomes(task)[-1] == "success"
            assert set(outcomes(task)) <= {"lost", "success"}, task
        paths = {r.path for r in receiver.requests}
        assert paths == {"/in-flight", *(f"/queued-{i}" for i in range(5))}
        # The outcome held through the outage was recorded once Redis was back: no second
        # delivery, one attempt.
        assert outcomes(get_task(api, in_flight)) == ["success"]
        assert [r.path for r in receiver.requests].count("/in-flight") == 1

        # Submitting works again, and the worker serves it.
        after = submit(api, {"url": receiver.url("/after")})
        wait_for_status(api, after, "completed", timeout=15)
        _consistent(url, [in_flight, *queued, after])
        assert running.worker.running and running.api.running


def test_nothing_accepted_is_lost_when_redis_is_killed_right_after_the_201(
    durable_redis: EmbeddedRedis, e2e_logs: Path
) -> None:
    url = durable_redis.url
    with (
        Receiver(default=200) as receiver,
        support.stack(url, e2e_logs) as running,
        httpx.Client(base_url=running.base_url, timeout=10) as api,
    ):
        running.worker.kill_group(signal.SIGSTOP)  # the worker takes nothing meanwhile
        try:
            accepted = [submit(api, {"url": receiver.url(f"/n{i}")}) for i in range(30)]
            # At once: Redis wrote each command to its append-only file before it replied.
            durable_redis.kill()
            durable_redis.start()
        finally:
            running.worker.kill_group(signal.SIGCONT)
        for task_id in accepted:
            wait_for_status(api, task_id, "completed", timeout=30)
        assert receiver.wait_for(30, timeout=10)
        _consistent(url, accepted)
