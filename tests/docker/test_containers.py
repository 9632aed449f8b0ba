"""The containers end to end (`make docker-test`): docker-compose.yml built and run for real.

A webhook goes in through the API's published port and out of a worker container to a receiver on
this machine (bound on the Docker bridge's gateway address, the host as the containers see it).
Then two workers deliver slow webhooks and one container is stopped mid-delivery the way
`docker compose stop` does it (SIGTERM, then the grace): every task must still end `completed`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.docker.support import Receiver, Stack, compose_up, poll, run

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1200)]

# Its own project name: never touches a developer's `make docker-up` stack.
PROJECT = "queue-system-ci"
STOP_GRACE_S = 70


@pytest.fixture(scope="module")
def stack(receiver: Receiver) -> Iterator[Stack]:
    # Two deliveries at a time per worker container: "three in flight" means both are busy.
    settings = {"WORKER_PROCESSES": "1", "WORKER_CONCURRENCY": "2", "WORKER_STOP_GRACE": f"{STOP_GRACE_S}s"}
    with compose_up(receiver, PROJECT, ["docker-compose.yml"], settings) as stack:
        yield stack


def test_a_webhook_through_the_published_port_completes(stack: Stack, receiver: Receiver) -> None:
    stack.submit("ci-one", receiver.url("/hook"))
    assert poll(lambda: stack.status("ci-one") == "completed", timeout=60), stack.status("ci-one")
    assert "ci-one" in receiver.bodies


def test_stopping_a_worker_mid_delivery_loses_nothing(stack: Stack, receiver: Receiver) -> None:
    stack.compose(
        "up", "-d", "--scale", "worker=2", "--no-recreate", "--wait", "--wait-timeout", "120", timeout=300
    )
    workers = stack.workers()
    assert len(workers) == 2, workers
    victim = workers[0]
    grace = run(["docker", "inspect", "--format", "{{.Config.StopTimeout}}", victim], 30).strip()
    assert grace == str(STOP_GRACE_S), f"compose did not hand stop_grace_period to the container: {grace}"

    ids = [f"ci-slow-{i}" for i in range(8)]
    for task_id in ids:
        stack.submit(task_id, receiver.url("/slow?delay=4"))
    # Each container delivers at most 2 at once: 3 in flight means both containers are mid-delivery.
    assert poll(lambda: receiver.in_flight >= 3, timeout=60), receiver.in_flight

    started = time.monotonic()
    # What `docker compose stop` does to one container: STOPSIGNAL (SIGTERM), then SIGKILL after
    # the container's stop timeout (stop_grace_period, checked above).
    run(["docker", "stop", victim], STOP_GRACE_S + 30)
    stopped_after = time.monotonic() - started
    exit_code = run(["docker", "inspect", "--format", "{{.State.ExitCode}}", victim], 30).strip()
    assert exit_code == "0", f"the worker did not stop cleanly (exit {exit_code}, {stopped_after:.1f} s)"
    assert stopped_after < STOP_GRACE_S, "the worker needed Docker's SIGKILL"

    def all_completed() -> bool:
        return all(stack.status(task_id) == "completed" for task_id in ids)

    assert poll(all_completed, timeout=120, interval=1), {t: stack.status(t) for t in ids}
    assert set(ids) <= set(receiver.bodies)
    assert len(stack.workers()) == 1
