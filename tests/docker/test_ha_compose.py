"""The replicated topology in containers (`make docker-test`): docker-compose.yml with
docker-compose.ha.yml (1 primary, 2 replicas, 3 sentinels; the API and the worker through
REDIS_SENTINELS, REDIS_MIN_REPLICAS=1).

Webhooks are submitted at a steady pace while the primary's container is SIGKILLed (`docker
kill`): the sentinels promote a replica, the API answers 503 in between and 201 again with no
process restarted, and every task that got a 201 is delivered to the receiver.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.docker.support import API_KEY, Receiver, Stack, compose_up, poll, run

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

PROJECT = "queue-system-ci-ha"
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")
# `INFO sentinel`: master0:name=qs,status=ok,address=172.18.0.2:6379,slaves=2,sentinels=3
MASTER_LINE = re.compile(r"master0:name=qs,status=(\w+),address=([^,]+),slaves=(\d+),sentinels=(\d+)")


def sentinel_view(stack: Stack, sentinel: str) -> tuple[str, str, int, int] | None:
    """(status, primary address, replicas, sentinels) as `sentinel` sees them; None: no answer."""
    try:
        out = stack.compose("exec", "-T", sentinel, "redis-cli", "-p", "26379", "info", "sentinel")
    except AssertionError:
        return None
    found = MASTER_LINE.search(out)
    if not found:
        return None
    return found[1], found[2], int(found[3]), int(found[4])


def agreed_primary(stack: Stack, replicas: int) -> str | None:
    """The primary's address once every sentinel names the same one, with `replicas` replicas and
    the 3 sentinels known (a failover is possible); else None."""
    views = [sentinel_view(stack, s) for s in SENTINELS]
    if any(v is None or v[0] != "ok" or v[2] < replicas or v[3] != 3 for v in views):
        return None
    addresses = {v[1] for v in views if v is not None}
    return addresses.pop() if len(addresses) == 1 else None


def wait_primary(stack: Stack, replicas: int, other_than: str = "", timeout: float = 90) -> str:
    """Poll until the sentinels agree on a primary (not `other_than`) -> its address."""
    seen: list[str] = []

    def agreed() -> bool:
        address = agreed_primary(stack, replicas)
        if address is None or address == other_than:
            return False
        seen.append(address)
        return True

    assert poll(agreed, timeout, 1), [sentinel_view(stack, s) for s in SENTINELS]
    return seen[-1]


class Load:
    """Submits a webhook every `interval` seconds in a thread; records each answer."""

    def __init__(self, api: str, url: str, interval: float = 0.05) -> None:
        self.client = httpx.Client(base_url=api, timeout=5, headers={"X-API-Key": API_KEY})
        self.url = url
        self.interval = interval
        self.accepted: list[str] = []
        self.answers: list[tuple[float, int]] = []  # (monotonic, status; 0: no answer)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        i = 0
        while not self._stop.is_set():
            task_id = f"ha-{i}"
            body = {"id": task_id, "type": "webhook", "payload": {"url": self.url, "body": task_id}}
            try:
                code = self.client.post("/api/v1/tasks", json=body).status_code
            except httpx.HTTPError:
                code = 0
            self.answers.append((time.monotonic(), code))
            if code == 201:
                self.accepted.append(task_id)
                i += 1
            # (any other answer: the same id again, as a client's retry would)
            self._stop.wait(self.interval)

    def first_201_after(self, t: float) -> float | None:
        return next((at for at, code in self.answers if at > t and code == 201), None)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.client.close()


@pytest.fixture(scope="module")
def stack(receiver: Receiver) -> Iterator[Stack]:
    settings = {"WORKER_PROCESSES": "1", "WORKER_CONCURRENCY": "4", "WORKER_STOP_GRACE": "40s"}
    files = ["docker-compose.yml", "docker-compose.ha.yml"]
    with compose_up(receiver, PROJECT, files, settings, log_tail=60) as stack:
        yield stack


def test_killing_the_primary_container_loses_no_accepted_webhook(stack: Stack, receiver: Receiver) -> None:
    old = wait_primary(stack, replicas=2)
    primary = stack.container("redis")
    url = receiver.url("/ha")
    with Load(str(stack.api.base_url), url) as load:
        assert poll(lambda: len(load.accepted) >= 40, 60), load.answers[-5:]
        killed_at = time.monotonic()
        run(["docker", "kill", "--signal", "KILL", primary], 30)
        new = wait_primary(stack, replicas=1, other_than=old)
        assert poll(lambda: load.first_201_after(killed_at + 0.5) is not None, 90), load.answers[-5:]
        before = len(load.accepted)
        assert poll(lambda: len(load.accepted) >= before + 40, 60), load.answers[-5:]
    again = load.first_201_after(killed_at + 0.5)
    assert again is not None
    refused = sum(1 for at, code in load.answers if at > killed_at and code != 201)
    print(
        f"\nHA compose: primary {old} -> {new}; {len(load.accepted)} accepted; first 201 again "
        f"{again - killed_at:.1f} s after the SIGKILL of the primary; {refused} submits refused "
        "or unanswered in between"
    )
    # The API and the worker were not restarted: the same containers, running since before the kill.
    for service in ("api", "worker"):
        restarts = run(["docker", "inspect", "--format", "{{.RestartCount}}", stack.container(service)], 30)
        assert restarts.strip() == "0", f"{service} was restarted"

    accepted = set(load.accepted)

    def all_delivered() -> bool:
        with receiver.lock:
            return accepted <= set(receiver.bodies)

    assert poll(all_delivered, 180, 1), sorted(accepted - set(receiver.bodies))[:20]

    # An outcome the killed primary had not yet passed to a replica is gone with it: its task is
    # still `processing` on the new primary until the lease ends and a reconciler delivers it again
    # (a duplicate, counted below). So each task is completed within a lease or two, not at once.
    def unfinished() -> dict[str, str]:
        statuses = {task_id: stack.status(task_id) for task_id in sorted(accepted)}
        return {task_id: status for task_id, status in statuses.items() if status != "completed"}

    assert poll(lambda: not unfinished(), 90, 1), unfinished()
    with receiver.lock:
        duplicates = len(receiver.bodies) - len(set(receiver.bodies))
    print(f"HA compose: every accepted webhook delivered; {duplicates} delivered twice")
