"""`python -m bench.script_cost [N]`: Redis's cost per webhook of each hot script, alone.

No worker process, no HTTP: one embedded Redis, N webhook tasks (one host, a distinct endpoint
each, as scenario scale-out sends them), driven through the real stores: the API's create
(100 in flight, as its Batcher pipelines them), then in rounds of 64 the worker's claims from 8
threads (as the worker's threads claim: storage/combiner.py) and their finishes in batches of 16
(as the delivery loop records them), each acknowledging a message Dramatiq had fetched.
Prints, per phase and per task: the Redis process's CPU (INFO cpu), its EVALSHA calls and time,
and the commands the scripts ran (INFO commandstats), three times. Scenario scale-out measures
the whole system; this says which script a change made cheaper, in a minute, on a quiet Redis.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from queue_system.domain.models import Attempt, AttemptResult, Outcome, TaskStatus
from queue_system.domain.retry import Decision
from queue_system.local.embedded import EmbeddedRedis
from queue_system.storage import dramatiq_wire
from queue_system.storage.keys import Keys
from queue_system.storage.task_store import RedisAsyncTaskStore
from queue_system.storage.types import Claim, FinishCall, MessageAck, NewTask
from queue_system.storage.worker_store import RedisTaskStore

K = Keys()
BROKER = "bench-broker"
# This harness's own commands, not the scripts'.
_OWN = {
    "cmdstat_info",
    "cmdstat_lrange",
    "cmdstat_del",
    "cmdstat_sadd",
    "cmdstat_flushall",
    "cmdstat_scard",
    "cmdstat_client",
}


class Phase:
    def __init__(self, name: str) -> None:
        self.name, self.cpu_s, self.calls, self.usec = name, 0.0, Counter[str](), Counter[str]()

    def add(self, before: tuple[float, dict[str, Any]], after: tuple[float, dict[str, Any]]) -> None:
        self.cpu_s += after[0] - before[0]
        for cmd, stat in after[1].items():
            was = before[1].get(cmd, {"calls": 0, "usec": 0})
            self.calls[cmd] += stat["calls"] - was["calls"]
            self.usec[cmd] += stat["usec"] - was["usec"]

    def line(self, n: int) -> str:
        ev_calls, ev_us = self.calls.pop("cmdstat_evalsha", 0), self.usec.pop("cmdstat_evalsha", 0)
        inner = ", ".join(
            f"{c.removeprefix('cmdstat_')} {k / n:.1f}" for c, k in self.calls.most_common(8) if k
        )
        return (
            f"{self.name:6s} Redis CPU {self.cpu_s * 1e6 / n:5.1f} us/task; EVALSHA {ev_calls / n:.2f}/task, "
            f"{ev_us / n:5.1f} us/task; in them {sum(self.calls.values()) / n:4.1f} commands: {inner}"
        )


def _snap(client: redis.Redis) -> tuple[float, dict[str, Any]]:
    cpu: dict[str, Any] = client.info("cpu")  # type: ignore[assignment]
    stats: dict[str, Any] = client.info("commandstats")  # type: ignore[assignment]
    return cpu["used_cpu_sys"] + cpu["used_cpu_user"], {k: v for k, v in stats.items() if k not in _OWN}


async def _submit(url: str, n: int) -> None:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    store = RedisAsyncTaskStore(client)

    async def one(i: int) -> None:
        payload = f'{{"url":"http://127.0.0.1:9/hooks/{i}","body":{{"a":1}}}}'
        extra = {"dest": "http://127.0.0.1:9", "ep": f"/hooks/{i}", "timeout_ms": "5000"}
        await store.create(NewTask(f"t{i}", "webhook", "default", payload, "fp", 1_000_000 + i, extra=extra))

    for start in range(0, n, 100):
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + 100))))
    await client.aclose()


def _finish_call(claim: Claim) -> FinishCall:
    task = claim.task
    ack = MessageAck(
        fetched=K.acks(BROKER, "default"),
        messages=K.messages("default"),
        message_id=dramatiq_wire.message_id(task.id, task.token),
        heartbeats=K.heartbeats,
        consumer_id=BROKER,
        queue="default",
    )
    attempt = Attempt(n=1, started_at=2_000_000, duration_ms=3, outcome=Outcome.SUCCESS, status_code=200)
    result = AttemptResult(Outcome.SUCCESS, result={"status": 200})
    return FinishCall(task, attempt, Decision(TaskStatus.COMPLETED), result, 2_000_010, ack)


def one_round(url: str, client: redis.Redis, n: int, threads: ThreadPoolExecutor) -> list[str]:
    client.flushall()
    submit, claim, finish = Phase("submit"), Phase("claim"), Phase("finish")
    before = _snap(client)
    asyncio.run(_submit(url, n))
    submit.add(before, _snap(client))
    # As Dramatiq's fetch leaves them: the message ids in the consumer's set of fetched messages.
    fetched: list[str] = client.lrange(K.queue("default"), 0, -1)  # type: ignore[assignment]
    client.delete(K.queue("default"))
    client.sadd(K.acks(BROKER, "default"), *fetched)
    store = RedisTaskStore(redis.Redis.from_url(url, decode_responses=True))
    try:
        for start in range(0, n, 64):
            before = _snap(client)
            ids = [f"t{i}" for i in range(start, min(n, start + 64))]
            claims = list(threads.map(lambda i: store.claim(i, 1, 2_000_000, 2_060_000), ids))
            claim.add(before, _snap(client))
            calls = [_finish_call(c) for c in claims if isinstance(c, Claim)]
            assert len(calls) == len(ids), claims
            before = _snap(client)
            for b in range(0, len(calls), 16):
                store.finish_many(calls[b : b + 16], retention_ms=86_400_000)
            finish.add(before, _snap(client))
    finally:
        store.close()
    assert client.scard(K.acks(BROKER, "default")) == 0  # every message acknowledged
    return [submit.line(n), claim.line(n), finish.line(n)]


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 2_000
    server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="qs-script-cost-")), persist=False)
    url = server.start()
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        with ThreadPoolExecutor(8) as threads:
            for rnd in range(3):
                print(f"round {rnd + 1}, {n:,} webhooks:")
                for line in one_round(url, client, n, threads):
                    print("  " + line, flush=True)
    finally:
        client.close()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
