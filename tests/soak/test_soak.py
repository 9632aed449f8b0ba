"""The soak test (`make soak`): 20,000 webhooks through real processes while things break.

A real API (`cmd/api.py`) and worker group (`cmd/worker.py`, 2 processes) on an embedded Redis that
persists (append-only file), a receiver (bench/slow_receiver.py, its own process) that answers 500
to 10 % of the requests and never answers 2 %, webhooks submitted through the API at a steady rate.
Meanwhile the worker group is SIGKILLed three times (restarted at once each time) and Redis is
killed once (SIGKILL) and restarted. Then:

- every POST answered 201 ends `completed`, and reached the receiver at least once (each webhook's
  body carries its task id, the receiver counts outcomes per id); POSTs that got no 201 (Redis
  away) are sent again with the same id, as a client would, and must end answered;
- the counts add up: every task in Redis is completed, nothing is left waiting, leased, scheduled
  or queued;
- a bounded SCAN of Redis finds no key without an owner or an expiry (the rules in `_owner_rules`).

Short intervals keep it to minutes: WORKER_REQUEST_TIMEOUT 2s (a hung request costs 2 s),
WORKER_RETRY_INTERVAL 1s, and WORKER_LEASE 5s so the tasks a killed worker was running are
recovered within seconds (the default is 15 s). Progress is printed (run with `-s`); `make soak`
keeps the logs of every process in var/soak/. SOAK_TASKS and SOAK_RATE (tasks/s offered) change
the size.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import redis

from queue_system.domain.queues import QUEUES
from queue_system.local.embedded import EmbeddedRedis
from queue_system.storage.keys import Keys
from queue_system.testing import port_open
from tests.e2e import support

pytestmark = [pytest.mark.soak, pytest.mark.timeout(900)]

TASKS = int(os.environ.get("SOAK_TASKS", "20000"))
RATE = float(os.environ.get("SOAK_RATE", "250"))
DEADLINE_S = 600.0  # the whole run, submitting included; the test's own timeout is 900 s
SCAN_LIMIT = 1_000_000  # keys examined at most
KEYS = Keys()

ENV = {
    "LOG_LEVEL": "WARNING",  # 20,000 tasks at INFO would write a log line per attempt
    "WORKER_PROCESSES": "2",
    "WORKER_CONCURRENCY": "8",
    "WORKER_REQUEST_TIMEOUT": "2s",
    "WORKER_RETRY_INTERVAL": "1s",
    "WORKER_LEASE": "5s",
    "WORKER_POLL_INTERVAL": "100ms",
    # Deliveries go to 127.0.0.1: allowed explicitly, should an egress policy deny private ranges.
    "EGRESS_ALLOW_CIDRS": "127.0.0.0/8",
}


def say(message: str) -> None:
    sys.stdout.write(f"[soak {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stdout.flush()


@pytest.fixture
def durable_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    folder = tmp_path_factory.mktemp("soak-redis")
    with EmbeddedRedis(folder, persist=True, port=support.free_port()) as server:
        yield server


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[str]:
    port = support.free_port()
    args = [sys.executable, "-m", "bench.slow_receiver", "--port", str(port), "--delay-ms", "0"]
    args += ["--error-rate", "0.1", "--hang-rate", "0.02", "--id-field", "id"]
    proc = support.Proc("receiver", args, support.child_env(), tmp_path)
    try:
        assert support.poll(lambda: port_open(port) or not proc.running, 15), proc.tail()
        assert proc.running, proc.tail()
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop(5)


def task_id(i: int) -> str:
    return f"soak-{i:05d}"


def body(receiver: str, i: int) -> bytes:
    hook = {"id": task_id(i), "url": f"{receiver}/hook", "body": {"id": task_id(i), "n": i}}
    return json.dumps(hook, separators=(",", ":")).encode()


class Faults:
    """The worker group (restarted after each SIGKILL) and the scheduled faults."""

    def __init__(self, redis_url: str, server: EmbeddedRedis, log_dir: Path) -> None:
        self.redis_url = redis_url
        self.server = server
        self.log_dir = log_dir
        self.workers: list[support.Proc] = []
        self.kills = 0
        self.start_worker()

    @property
    def worker(self) -> support.Proc:
        return self.workers[-1]

    def start_worker(self) -> None:
        self.workers.append(support.launch_worker(self.redis_url, self.log_dir, **ENV))

    def kill_workers(self) -> None:
        old = self.worker
        old.kill_group(signal.SIGKILL)
        old.wait(10)
        assert support.poll(lambda: not any(support.alive(p) for p in support.descendants(old.pid)), 10)
        self.kills += 1
        self.start_worker()
        say(f"SIGKILLed the worker group ({self.kills}), started a new one")

    def kill_redis(self, outage_s: float = 2.0) -> None:
        self.server.kill()
        say("SIGKILLed Redis")
        time.sleep(outage_s)  # the outage itself: the API answers 503, the workers retry
        self.server.start()
        say("Redis restarted (from its append-only file)")

    def stop(self) -> None:
        for proc in self.workers:
            proc.stop(10)


async def _post(host: str, port: int, request: bytes) -> int:
    """One POST on its own connection -> the status (a client as cheap as it gets: the soak's
    CPU should go to the product, not to httpx)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1])
    finally:
        writer.close()


async def _submit(api: str, bodies: dict[int, bytes], rate: float, statuses: dict[int, int]) -> None:
    parsed = httpx.URL(api)
    host, port = parsed.host, parsed.port or 80
    gate = asyncio.Semaphore(32)

    async def one(i: int, data: bytes) -> None:
        head = f"POST /api/v1/tasks HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        request = f"{head}Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data
        async with gate:
            try:
                statuses[i] = await asyncio.wait_for(_post(host, port, request), 15)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                statuses[i] = 0  # no answer: it may or may not have been stored

    t0 = time.monotonic()
    tasks = []
    for n, (i, data) in enumerate(bodies.items()):
        delay = t0 + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, data)))
    await asyncio.gather(*tasks)


def submit(api: str, receiver: str, indexes: list[int], rate: float, statuses: dict[int, int]) -> None:
    """POST the webhooks `indexes` at `rate`/s -> statuses[i] = the answer's status (0: none)."""
    asyncio.run(_submit(api, {i: body(receiver, i) for i in indexes}, rate, statuses))


def counts(client: redis.Redis) -> dict[str, int]:
    with client.pipeline(transaction=False) as pipe:
        for status in ("pending", "processing", "retrying", "completed", "failed"):
            pipe.zcard(KEYS.index(status=status))
        pipe.zcard(KEYS.index())
        values = pipe.execute()
    names = ("pending", "processing", "retrying", "completed", "failed", "all")
    return dict(zip(names, (int(v) for v in values), strict=True))


def _progress(client: redis.Redis, receiver: str) -> str:
    try:
        c = counts(client)
    except redis.RedisError as exc:
        return f"Redis unavailable ({exc.__class__.__name__})"
    stats = httpx.get(f"{receiver}/_stats", timeout=10).json()
    return (
        f"tasks {c['all']}: completed {c['completed']}, pending {c['pending']}, processing "
        f"{c['processing']}, retrying {c['retrying']}, failed {c['failed']}; receiver: "
        f"{stats['requests']} requests, answered {stats['answered']}, hung {stats['hung']}"
    )


# ---------------------------------------------------------------- the owner rules


# family -> the sorted set that owns its keys (its member: the key's value). A running bulk
# operation is owned by `{p}:ops:running`; an ended one expires.
_OWNED_BY = {
    **dict.fromkeys(("task", "history", "payload"), KEYS.index()),
    **dict.fromkeys(("dest", "inflight", "parked"), KEYS.dests),
    **dict.fromkeys(("endpoint", "ep_inflight", "ep_parked"), KEYS.endpoints),
    **dict.fromkeys(("sched", "sched_runs"), KEYS.scheds),
    "op": KEYS.ops_running,
}


def _owner_rules(client: redis.Redis, key: str, p: str) -> str | None:
    """Why `key` (which has no expiry) may stay, or None. From storage/keys.py's layout:
    - the indexes, the schedule, the leases, the expiry zset and the destinations zset are the
      owners themselves;
    - task keys `{p}:task|history|payload:{id}` are owned by `{p}:idx:all` (or expire);
    - Dramatiq's keys `{p}:dramatiq:*` (queues, message hashes, dead letters, the consumers' ack
      sets and heartbeats) belong to Dramatiq's broker;
    - destination keys `{p}:dest|inflight|parked:{d}` are owned by `{p}:dests`, endpoint keys
      `{p}:endpoint|ep-inflight|ep-parked:{e}` by `{p}:endpoints` (the destinations design: the
      reconciler forgets an idle host or endpoint);
    - the paused queues `{p}:queues:paused` and the held sets `{p}:held:{queue}` belong to the
      queues (QUEUES: a fixed set);
    - rate-limit buckets `{p}:ratelimit:*` and per-minute counters `{p}:stats:*` must expire:
      no rule here, so one without a TTL is reported.
    """
    owners = (KEYS.index(), KEYS.schedule, KEYS.leases, KEYS.expiry, KEYS.dests, KEYS.dests_due)
    if key in (
        *owners,
        KEYS.endpoints,
        KEYS.endpoints_due,
        KEYS.scheds,
        KEYS.scheds_due,
        KEYS.ops,
        KEYS.ops_running,
    ):
        return "an owner"
    if key.startswith(f"{p}:idx:"):
        return "an owner"
    if key.startswith(f"{p}:dramatiq:"):
        return "Dramatiq's"
    family, value = KEYS.parse(key) or ("", "")
    owner = _OWNED_BY.get(family)
    if owner is not None:
        return owner if client.zscore(owner, value) is not None else None
    if family == "layout":
        return "the layout version"
    if family == "paused_queues" or (family == "held" and value in QUEUES):
        return "a queue's"  # one per queue of domain/queues.py QUEUES: a fixed, bounded set
    return None


def orphans(client: redis.Redis) -> tuple[int, list[str]]:
    """SCAN every key (bounded) -> (keys seen, keys with neither an expiry nor an owner)."""
    seen = 0
    bad: list[str] = []
    for key in client.scan_iter(count=1000):
        seen += 1
        if seen > SCAN_LIMIT:
            raise AssertionError(f"more than {SCAN_LIMIT} keys: the scan stopped")
        if cast(int, client.ttl(key)) > 0:
            continue  # expires: no owner needed
        if _owner_rules(client, key, KEYS.prefix) is None:
            bad.append(key)
    return seen, bad


# ---------------------------------------------------------------- the test


def test_soak(durable_redis: EmbeddedRedis, receiver: str, tmp_path: Path) -> None:
    t0 = time.monotonic()
    url = durable_redis.url
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=10)
    say(f"{TASKS} webhooks at {RATE:g}/s; logs in {tmp_path}")
    api, base = support.launch_api(url, tmp_path, **ENV)
    faults = Faults(url, durable_redis, tmp_path)
    statuses: dict[int, int] = {}
    try:
        support.wait_ready(api, base)
        submitter = threading.Thread(
            target=submit, args=(base, receiver, list(range(TASKS)), RATE, statuses), daemon=True
        )
        submitter.start()
        submit_s = TASKS / RATE
        # The faults, spread over the submitting (times in seconds from its start).
        plan = [
            (0.15 * submit_s, faults.kill_workers),
            (0.40 * submit_s, faults.kill_workers),
            (0.55 * submit_s, faults.kill_redis),
            (0.80 * submit_s, faults.kill_workers),
        ]
        t_submit = time.monotonic()
        last_print = 0.0
        while plan or submitter.is_alive():
            assert time.monotonic() - t0 < DEADLINE_S, "the submitting did not end in time"
            if plan and time.monotonic() - t_submit >= plan[0][0]:
                plan.pop(0)[1]()
            if time.monotonic() - last_print >= 10:
                last_print = time.monotonic()
                say(f"submitted {len(statuses)}; {_progress(client, receiver)}")
            assert faults.worker.running, faults.worker.tail()
            time.sleep(0.1)
        submitter.join(30)
        assert faults.kills == 3

        # A client sends again what got no 201 (Redis was away): same id, so never twice.
        unanswered = [i for i in range(TASKS) if statuses.get(i) not in (200, 201)]
        first_refused = len(unanswered)
        for _ in range(5):
            if not unanswered:
                break
            submit(base, receiver, unanswered, RATE, statuses)
            unanswered = [i for i in unanswered if statuses.get(i) not in (200, 201)]
            time.sleep(1)
        say(f"submitted all; {first_refused} not accepted at first (Redis away), sent again")
        assert not unanswered, f"never accepted: {[task_id(i) for i in unanswered[:20]]}"

        # The longest time no task completed while some were left: today, the messages a killed
        # process had prefetched wait for Dramatiq's own dead-worker requeue (issue 9, item 3).
        stall = {"since": time.monotonic(), "done": -1, "longest": 0.0}

        def all_done() -> bool:
            nonlocal last_print
            assert faults.worker.running, faults.worker.tail()
            c = counts(client)
            now = time.monotonic()
            if c["completed"] != stall["done"]:
                stall.update(since=now, done=c["completed"])
            stall["longest"] = max(stall["longest"], now - stall["since"])
            if time.monotonic() - last_print >= 10:
                last_print = time.monotonic()
                say(_progress(client, receiver))
            return c["completed"] >= TASKS and c["all"] == c["completed"]

        left = DEADLINE_S - (time.monotonic() - t0)
        assert support.poll(all_done, left, interval=1.0), f"not all completed: {_progress(client, receiver)}"
        say(
            f"all completed after {time.monotonic() - t0:.0f} s (the longest stretch with no task "
            f"completing: {stall['longest']:.0f} s); checking"
        )
        _check(client, receiver)
    finally:
        say(f"run over after {time.monotonic() - t0:.0f} s; stopping")
        faults.stop()
        api.stop()
        client.close()


def _check(client: redis.Redis, receiver: str) -> None:
    ids = [task_id(i) for i in range(TASKS)]
    with client.pipeline(transaction=False) as pipe:
        for tid in ids:
            pipe.hget(KEYS.task(tid), "status")
        status = dict(zip(ids, pipe.execute(), strict=True))
    not_done = {tid: s for tid, s in status.items() if s != "completed"}
    assert not not_done, f"{len(not_done)} not completed, e.g. {list(not_done.items())[:10]}"

    # Each reached the receiver, and was answered 200 there at least once.
    seen: dict[str, dict[str, int]] = httpx.get(f"{receiver}/_ids", timeout=30).json()
    unknown = set(seen) - set(ids)
    assert not unknown, f"requests the soak did not send: {sorted(unknown)[:10]}"
    never_ok = [tid for tid in ids if seen.get(tid, {}).get("200", 0) < 1]
    assert not never_ok, f"{len(never_ok)} completed but never answered 200, e.g. {never_ok[:10]}"
    stats: dict[str, Any] = httpx.get(f"{receiver}/_stats", timeout=10).json()
    ok = int(stats["answered"].get("200", 0))
    twice = sum(1 for tid in ids if seen[tid].get("200", 0) > 1)
    say(
        f"receiver: {stats['requests']} requests, {ok} answered 200 ({twice} tasks delivered more than "
        f"once: a crash between the request and the record), {stats['answered'].get('500', 0)} answered "
        f"500, {stats['hung']} hung"
    )
    assert ok >= TASKS
    assert stats["requests"] == sum(sum(by.values()) for by in seen.values())

    # The counts add up: every task completed, nothing waiting, leased, scheduled or queued.
    c = counts(client)
    assert c["all"] == c["completed"] == TASKS, c
    assert client.zcard(KEYS.leases) == 0
    assert client.zcard(KEYS.schedule) == 0

    def queues_empty() -> bool:
        queues = ("default", "priority")
        return all(client.llen(KEYS.queue(q)) == 0 and client.hlen(KEYS.messages(q)) == 0 for q in queues)

    # The last messages are acknowledged after their outcome is recorded: a short wait.
    assert support.poll(queues_empty, 15), {q: client.hlen(KEYS.messages(q)) for q in ("default", "priority")}

    seen_keys, bad = orphans(client)
    say(f"scanned {seen_keys} keys: {len(bad)} with neither an owner nor an expiry")
    assert not bad, f"keys with neither an owner nor an expiry: {bad[:20]}"
