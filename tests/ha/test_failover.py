"""`make test-ha`: Redis failovers under a steady load of webhooks, with real processes throughout.

On loopback: 1 primary + 2 replicas + 3 sentinels (down-after-milliseconds 1000), configured as
README "High availability" recommends (appendonly yes, everysec, noeviction, min-replicas-to-write
1); one API and one worker given only REDIS_SENTINELS (and REDIS_URL for the password); a receiver
on 127.0.0.1. A client submits 20 webhooks/s, each with its own `id`, retrying the same `id` after
a 503 or a timeout as the README tells clients to. Meanwhile:

1. SIGKILL the primary; once a replica is promoted, the dead node comes back as a replica;
2. SIGSTOP the new primary until the sentinels promote another, then SIGCONT it: it must come back
   as a replica (Sentinel converts it);
3. SIGKILL a sentinel; 4. SIGKILL a replica.

No API or worker process is restarted. With REDIS_MIN_REPLICAS=1 every 201 must reach the receiver
and complete; with 0 the run reports how many 201s were lost (the RPO). Both report the RTO (kill
-> the first 201 again), the duplicates (webhook-ids delivered twice) and stuck tasks (none allowed).
"""

from __future__ import annotations

import collections
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e import support
from tests.support.receiver import Receiver
from tests.support.sentinel_group import Node, RedisGroup

pytestmark = [pytest.mark.ha, pytest.mark.timeout(240)]

RATE_PER_S = 20
WORKER_ENV = {
    "WORKER_PROCESSES": "1",
    "WORKER_CONCURRENCY": "4",
    "WORKER_LEASE": "3s",  # a delivery whose outcome a failover lost is recovered within seconds
    "WORKER_REQUEST_TIMEOUT": "2s",
    "REDIS_MIN_REPLICAS_TIMEOUT": "1s",
}


@dataclass
class Load:
    """One client submitting webhooks at RATE_PER_S, one request at a time; a refused id is
    retried (same id) until it is accepted."""

    api: httpx.Client
    receiver: Receiver
    accepted: dict[str, float] = field(default_factory=dict)  # id -> monotonic time of its 201
    refused: collections.Counter[str] = field(default_factory=collections.Counter)  # "phase: why"
    phase: str = "steady"
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="load", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        task_id = str(uuid.uuid4())
        next_at = time.monotonic()
        while not self.stop.is_set():
            next_at += 1 / RATE_PER_S
            body = {"id": task_id, "url": self.receiver.url(f"/h/{task_id}"), "method": "POST"}
            try:
                response = self.api.post("/api/v1/tasks", json=body)
            except httpx.TransportError as exc:
                status, why = 0, type(exc).__name__
            else:
                status = response.status_code
                why = f"{status} {_slug(response)}"
            if status in (200, 201):
                self.accepted.setdefault(task_id, time.monotonic())
                task_id = str(uuid.uuid4())
            else:
                self.refused[f"{self.phase}: {why}"] += 1
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic() - 1)  # after a long stall, no burst to catch up

    def finish(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(30)

    def first_201_after(self, moment: float, timeout: float = 60.0) -> float:
        """Seconds from `moment` to the first acceptance after it (polls the load's record)."""

        def found() -> bool:
            return any(at > moment for at in list(self.accepted.values()))

        assert support.poll(found, timeout, interval=0.05), f"no 201 within {timeout}s of the fault"
        return min(at for at in list(self.accepted.values()) if at > moment) - moment


def _slug(response: httpx.Response) -> str:
    try:
        return str(response.json().get("type", "")).rpartition(":")[2]
    except ValueError:
        return ""


@pytest.fixture
def group(tmp_path: Path) -> Iterator[RedisGroup]:
    with RedisGroup(
        tmp_path / "redis", replicas=2, sentinels=3, down_after_ms=1000, min_replicas_to_write=1
    ) as running:
        yield running


def _stop_until_replaced(group: RedisGroup, node: Node) -> tuple[Node, float]:
    """SIGSTOP `node` (the primary) until the sentinels promote another; SIGCONT; -> (new, s)."""
    node.signal(signal.SIGSTOP)
    try:
        return group.wait_primary_changed(node, timeout=30)
    finally:
        node.signal(signal.SIGCONT)


@pytest.mark.parametrize("min_replicas", ["1", "0"])
def test_failovers_under_load(group: RedisGroup, tmp_path: Path, min_replicas: str) -> None:
    env = WORKER_ENV | group.env() | {"REDIS_MIN_REPLICAS": min_replicas}
    redis_url = env.pop("REDIS_URL")
    report: dict[str, object] = {"REDIS_MIN_REPLICAS": min_replicas}
    with (
        Receiver() as receiver,
        support.stack(redis_url, tmp_path / "logs", **env) as running,
        httpx.Client(base_url=running.base_url, timeout=5) as api,
    ):
        load = Load(api, receiver)
        load.start()
        try:
            time.sleep(5)  # steady state first

            # 1. the primary dies; it comes back (as its supervisor would restart it) as a replica
            first = group.primary()
            load.phase = "kill"
            first.kill()
            killed = time.monotonic()
            second, promoted_s = group.wait_primary_changed(first)
            report["kill: promoted after s"] = round(promoted_s, 1)
            report["kill: RTO s"] = round(load.first_201_after(killed), 1)
            group.restart_as_replica(first, second)
            group.wait_replica(first)

            # 2. the new primary stops (a long GC pause, a frozen VM) past down-after-milliseconds
            load.phase = "stop"
            stopped = time.monotonic()
            third, replaced_s = _stop_until_replaced(group, second)
            report["stop: promoted after s"] = round(replaced_s, 1)
            report["stop: RTO s"] = round(load.first_201_after(stopped), 1)
            group.wait_replica(second, timeout=60)  # Sentinel converts the old primary
            assert group.role(second) == "slave"

            # 3. a sentinel dies; 4. a replica dies (the primary keeps one: min-replicas-to-write 1)
            load.phase = "sentinel+replica"
            group.sentinels[0].kill()
            replica = next(n for n in group.data if n is not third and n.running)
            replica.kill()
            lost_replica = time.monotonic()
            report["replica kill: RTO s"] = round(load.first_201_after(lost_replica), 1)
            time.sleep(5)
        finally:
            load.finish()
        assert running.api.running and running.worker.running, "a process of ours died"
        _settle_and_report(load, receiver, api, report, strict=min_replicas != "0")


def _settle_and_report(
    load: Load, receiver: Receiver, api: httpx.Client, report: dict[str, object], *, strict: bool
) -> None:
    accepted = set(load.accepted)
    missing: set[str] = set()

    def delivered_all() -> bool:
        nonlocal missing
        seen = {r.path.removeprefix("/h/") for r in receiver.requests}
        missing = accepted - seen
        return not missing

    support.poll(delivered_all, timeout=60, interval=0.5)
    lost = []  # accepted, never delivered, and the task is gone: the RPO
    stuck = []  # accepted, the task exists, and is not completed after the settling time
    for task_id in sorted(missing):
        response = api.get(f"/api/v1/tasks/{task_id}")
        if response.status_code == 404:
            lost.append(task_id)
        else:
            stuck.append((task_id, response.json().get("status")))
    by_id = collections.Counter(r.headers.get("webhook-id") for r in receiver.requests)
    paths = {r.headers.get("webhook-id"): r.path for r in receiver.requests}
    assert len(set(paths.values())) == len(paths), "a webhook-id named two tasks"
    duplicates = sum(n - 1 for n in by_id.values() if n > 1)
    report |= {
        "201s": len(accepted),
        "refused (then retried)": dict(load.refused),
        "lost 201s (RPO)": len(lost),
        "duplicates": duplicates,
        "stuck": len(stuck),
    }
    print(f"\nHA report: {report}")
    assert not stuck, f"tasks accepted and never finished: {stuck[:5]}"
    if strict:
        assert not lost, f"with REDIS_MIN_REPLICAS the 201s {lost[:5]} were lost"
