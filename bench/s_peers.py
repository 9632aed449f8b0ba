"""Peers: the same no-op drain through Celery (prefork, Redis broker), RQ (SimpleWorker) and arq,
in rotation with ours (ours, Celery, RQ, arq, ours, ...), 2 worker processes each, quiet logs.

How each is counted as done: ours by its `completed` index; Celery by its result keys (a second
Redis db); RQ by its finished-job registry; arq by its queue emptying (a job leaves it when done).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import redis

from bench.common import PY, BenchError, Proc, base_env, embedded_redis, log, spawn
from bench.context import WORKER_PATH_SHAPE, Context
from bench.drain import drain
from bench.report import Row, Target
from bench.s_worker import drain_ours, drain_timeout

PROCESSES = 2
TARGETS = {"Celery": 3.0, "arq": 1.5}


def _stop_all(procs: list[Proc]) -> None:
    for p in procs:
        p.stop()


def _drain_peer(procs: list[Proc], done: Callable[[], int], n: int) -> float:
    try:
        return drain(procs[0], done, n, timeout=drain_timeout(n)).rate
    finally:
        _stop_all(procs)


def celery_round(url: str, client: redis.Redis, n: int, logs: Path) -> float:
    from bench.peers import celery_app

    client.flushall()
    results_url = url.rsplit("/", 1)[0] + "/1"
    celery_app.app.conf.update(broker_url=url, result_backend=results_url)
    with celery_app.app.connection_for_write() as conn, conn.Producer() as producer:
        for _ in range(n):
            celery_app.noop.apply_async(producer=producer)
    env = base_env(BENCH_REDIS_URL=url, BENCH_RESULT_URL=results_url)
    args = [PY, "-m", "celery", "-A", "bench.peers.celery_app", "worker", "--pool", "prefork"]
    args += ["--concurrency", str(PROCESSES), "--loglevel", "WARNING"]
    args += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    results = redis.Redis.from_url(results_url)
    try:
        return _drain_peer([spawn("celery", args, env=env, logs=logs)], results.dbsize, n)
    finally:
        results.close()


def rq_round(url: str, client: redis.Redis, n: int, logs: Path) -> float:
    from rq import Queue

    from bench.peers import rq_jobs

    client.flushall()
    conn = redis.Redis.from_url(url)
    try:
        queue = Queue("default", connection=conn)
        for i in range(0, n, 500):
            queue.enqueue_many([Queue.prepare_data(rq_jobs.noop) for _ in range(min(500, n - i))])
    finally:
        conn.close()
    args = [PY, "-m", "rq.cli", "worker", "--worker-class", "rq.worker.SimpleWorker", "--url", url]
    args += ["--logging_level", "WARNING", "--disable-job-desc-logging", "default"]
    procs = [spawn(f"rq-{i}", args, env=base_env(), logs=logs) for i in range(PROCESSES)]
    return _drain_peer(procs, lambda: int(client.zcard("rq:finished:default")), n)


async def _arq_enqueue(url: str, n: int) -> None:
    from arq import create_pool
    from arq.connections import RedisSettings

    pool = await create_pool(RedisSettings.from_dsn(url))
    try:
        for i in range(0, n, 200):
            await asyncio.gather(*(pool.enqueue_job("noop") for _ in range(min(200, n - i))))
    finally:
        await pool.aclose()


def arq_round(url: str, client: redis.Redis, n: int, logs: Path) -> float:
    client.flushall()
    asyncio.run(_arq_enqueue(url, n))
    if int(client.zcard("arq:queue")) != n:
        raise BenchError(f"arq: {client.zcard('arq:queue')} jobs queued, expected {n}")
    env = base_env(BENCH_REDIS_URL=url, BENCH_THREADS=str(WORKER_PATH_SHAPE.threads))
    args = [PY, "-m", "arq", "--custom-log-dict", "bench.peers.arq_worker.QUIET_LOGGING"]
    args += ["bench.peers.arq_worker.WorkerSettings"]
    procs = [spawn(f"arq-{i}", args, env=env, logs=logs) for i in range(PROCESSES)]
    return _drain_peer(procs, lambda: n - int(client.zcard("arq:queue")), n)


PEERS: dict[str, Callable[[str, redis.Redis, int, Path], float]] = {
    "Celery": celery_round,
    "RQ": rq_round,
    "arq": arq_round,
}


def run(ctx: Context) -> None:
    n = ctx.sizes.peer_n
    rates: dict[str, list[float]] = {name: [] for name in ("ours", *PEERS)}
    with embedded_redis("peers") as (url, client):
        for rnd in range(ctx.sizes.rounds):
            rates["ours"].append(drain_ours(url, client, n, WORKER_PATH_SHAPE, ctx).rate)
            log(f"peers round {rnd + 1} ours: {rates['ours'][-1]:.0f} tasks/s")
            for name, round_fn in PEERS.items():
                rates[name].append(round_fn(url, client, n, ctx.logs))
                log(f"peers round {rnd + 1} {name}: {rates[name][-1]:.0f} tasks/s")
    for name in PEERS:
        target = TARGETS.get(name)
        ctx.rows.append(
            Row(
                "peers",
                f"drain {n:,} no-op vs {name}, {PROCESSES} processes",
                "tasks/s",
                ours=rates["ours"],
                ours_label="ours",
                baseline=rates[name],
                baseline_label=name,
                target=Target("ratio", ">=", target) if target else None,
            )
        )
    ctx.notes.append(
        f"peers: ours {WORKER_PATH_SHAPE.label()}; Celery prefork -c {PROCESSES} (default prefetch, "
        f"results in Redis); RQ {PROCESSES} x SimpleWorker; arq {PROCESSES} processes x max_jobs "
        f"{WORKER_PATH_SHAPE.threads}, poll_delay 0.1 s (its default 0.5 s caps it near 200/s); "
        "all with logs at WARNING."
    )
