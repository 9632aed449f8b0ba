"""Starting the systems under test the way users do, and loading them with work.

Ours: `python cmd/api.py` and `python cmd/worker.py` with the documented environment.
Baselines: bench/bare_api.py (uvicorn + a bare Litestar route) and `dramatiq bench.bare_worker`.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dramatiq
import httpx
import redis
import redis.asyncio as aioredis

from bench.common import PY, ROOT, Proc, base_env, port_open, spawn, wait_until
from queue_system.config.settings import load_settings
from queue_system.kinds import load_kinds
from queue_system.service.tasks import Submission, TaskService
from queue_system.storage.keys import Keys
from queue_system.storage.task_store import RedisAsyncTaskStore

KEYS = Keys()
# bench/bare_worker.py uses the same namespace (it imports nothing of ours, to stay bare).
BARE_NAMESPACE = "bench:dramatiq"
NOOP_MODULE = "bench.noop_kind"


@dataclass(frozen=True)
class WorkerShape:
    processes: int = 2
    threads: int = 8
    prefetch: int = 0  # 0: dramatiq's default (2 x threads)

    def label(self) -> str:
        pf = self.prefetch or 2 * self.threads
        return f"{self.processes}p x {self.threads}t, prefetch {pf}"


# ---------------------------------------------------------------- ours


def start_api(redis_url: str, port: int, logs: Path, **env: str) -> Proc:
    proc = spawn(
        "api",
        [PY, str(ROOT / "cmd" / "api.py")],
        env=base_env(REDIS_URL=redis_url, API_HOST="127.0.0.1", API_PORT=str(port), **env),
        logs=logs,
    )
    _wait_http(proc, port)
    return proc


def start_worker(redis_url: str, shape: WorkerShape, logs: Path, name: str = "worker", **env: str) -> Proc:
    extra = {
        "REDIS_URL": redis_url,
        "WORKER_PROCESSES": str(shape.processes),
        "WORKER_CONCURRENCY": str(shape.threads),
        "TASK_MODULES": NOOP_MODULE,
        **env,
    }
    if shape.prefetch:
        extra["WORKER_PREFETCH"] = str(shape.prefetch)
    return spawn(name, [PY, str(ROOT / "cmd" / "worker.py")], env=base_env(**extra), logs=logs)


def completed(client: redis.Redis) -> int:
    return int(client.zcard(KEYS.index(status="completed")))


def failed(client: redis.Redis) -> int:
    return int(client.zcard(KEYS.index(status="failed")))


async def _preload_ours(redis_url: str, subs: list[Submission], batch: int) -> None:
    # The sinks listen on loopback, which the egress guard blocks by default (as base_env opens it).
    kinds = load_kinds(load_settings({"EGRESS_ALLOW_CIDRS": "127.0.0.0/8"}), [NOOP_MODULE])
    client = aioredis.Redis.from_url(redis_url, decode_responses=True, max_connections=batch)
    try:
        service = TaskService(RedisAsyncTaskStore(client, KEYS), kinds, retention_ms=7 * 86_400_000)
        for i in range(0, len(subs), batch):
            await asyncio.gather(*(service.submit(s) for s in subs[i : i + batch]))
    finally:
        await client.aclose()


def preload_ours(redis_url: str, subs: list[Submission], batch: int = 100) -> None:
    """Create tasks through the product's own service (atomic store + enqueue), no worker running."""
    asyncio.run(_preload_ours(redis_url, subs, batch))


def noop_submissions(n: int) -> list[Submission]:
    return [Submission("noop", {"i": i}) for i in range(n)]


def webhook_submissions(urls: list[str], body: dict[str, Any]) -> list[Submission]:
    return [
        Submission(
            "webhook",
            {"url": url, "method": "POST", "headers": {"X-Bench": "1"}, "body": body},
        )
        for url in urls
    ]


# ---------------------------------------------------------------- baselines


def start_bare_api(port: int, logs: Path) -> Proc:
    proc = spawn(
        "bare-api", [PY, str(ROOT / "bench" / "bare_api.py")], env=base_env(BENCH_PORT=str(port)), logs=logs
    )
    _wait_http(proc, port)
    return proc


def start_bare_worker(redis_url: str, shape: WorkerShape, logs: Path, name: str = "bare-worker") -> Proc:
    env = base_env(BENCH_REDIS_URL=redis_url, BENCH_THREADS=str(shape.threads))
    if shape.prefetch:
        env["dramatiq_queue_prefetch"] = str(shape.prefetch)
    args = [PY, "-m", "dramatiq", "bench.bare_worker", "--processes", str(shape.processes)]
    args += ["--threads", str(shape.threads), "--queues", "default", "--path", str(ROOT)]
    return spawn(name, args, env=env, logs=logs)


def bare_message(actor: str, *args: Any) -> dramatiq.Message[Any]:
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name="default", actor_name=actor, args=args, kwargs={}, options={}
    )
    mid = str(uuid.uuid4())
    return message.copy(options={"redis_message_id": mid})


def _bare_queue() -> str:
    return f"{BARE_NAMESPACE}:default"


def bare_enqueue(client: redis.Redis, messages: list[dramatiq.Message[Any]], batch: int = 1000) -> None:
    """Dramatiq's own enqueue (HSET the message, RPUSH its id), pipelined: preloading is not timed."""
    queue = _bare_queue()
    for i in range(0, len(messages), batch):
        with client.pipeline(transaction=False) as pipe:
            for m in messages[i : i + batch]:
                mid = m.options["redis_message_id"]
                pipe.hset(f"{queue}.msgs", mid, m.encode())
                pipe.rpush(queue, mid)
            pipe.execute()


def bare_outstanding(client: redis.Redis) -> int:
    """Messages not yet acknowledged (Dramatiq deletes a message's body when it acks it)."""
    return int(client.hlen(f"{_bare_queue()}.msgs"))


# ---------------------------------------------------------------- helpers


def _wait_http(proc: Proc, port: int) -> None:
    wait_until(f"{proc.name} on port {port}", lambda: port_open(port) or not proc.running, 30)
    proc.check_alive()


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code < 500
    except httpx.HTTPError:
        return False
