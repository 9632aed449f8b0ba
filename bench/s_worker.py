"""Scenarios on the worker path, with the `noop` kind (bench/noop_kind.py):

2. drain N tasks through the full path (claim, run, record the attempt, complete) vs a bare
   Dramatiq no-op actor, same processes x threads x prefetch;
4. the same drain with 1 vs 2 worker processes;
5b. worker RSS after `rss_large` tasks vs after `rss_small` (a leak shows as growth).
"""

from __future__ import annotations

import os
import statistics
import time

import psutil
import redis

from bench.common import BenchError, Proc, embedded_redis, log, redis_cpu_s, running, tree_cpu_s
from bench.context import WORKER_PATH_SHAPE, Context
from bench.drain import CpuProbe, Drain, drain
from bench.report import Row, Target
from bench.systems import (
    WorkerShape,
    bare_enqueue,
    bare_message,
    bare_outstanding,
    completed,
    failed,
    noop_submissions,
    preload_ours,
    start_bare_worker,
    start_worker,
)


def drain_timeout(n: int) -> float:
    return 60 + n / 100  # generous: 100 tasks/s would be a disaster, not a measurement


def cpu_probe(proc: Proc, client: redis.Redis) -> CpuProbe:
    return lambda: {"worker": tree_cpu_s(proc.pid), "redis": redis_cpu_s(client)}


def ours_drained(proc: Proc, client: redis.Redis, n: int) -> Drain:
    """Wait until our worker `proc` has completed `n` tasks (any failed one is an error), CPU probed."""
    return drain(
        proc,
        lambda: completed(client),
        n,
        timeout=drain_timeout(n),
        failed=lambda: failed(client),
        cpu=cpu_probe(proc, client),
    )


def bare_drained(proc: Proc, client: redis.Redis, n: int) -> Drain:
    """Wait until the bare Dramatiq worker `proc` has taken all `n` messages off its queue, CPU probed."""
    return drain(
        proc, lambda: n - bare_outstanding(client), n, timeout=drain_timeout(n), cpu=cpu_probe(proc, client)
    )


def drain_ours(url: str, client: redis.Redis, n: int, shape: WorkerShape, ctx: Context) -> Drain:
    client.flushall()
    preload_ours(url, noop_submissions(n))
    with running(start_worker(url, shape, ctx.logs)) as proc:
        return ours_drained(proc, client, n)


def drain_bare(url: str, client: redis.Redis, n: int, shape: WorkerShape, ctx: Context) -> Drain:
    client.flushall()
    bare_enqueue(client, [bare_message("noop") for _ in range(n)])
    with running(start_bare_worker(url, shape, ctx.logs)) as proc:
        return bare_drained(proc, client, n)


def run_worker_path(ctx: Context) -> None:
    n, shape = ctx.sizes.drain_n, WORKER_PATH_SHAPE
    drains: dict[str, list[Drain]] = {"baseline": [], "ours": []}
    with embedded_redis("worker") as (url, client):
        for rnd, side in ctx.sides():
            d = (drain_bare if side == "baseline" else drain_ours)(url, client, n, shape, ctx)
            cpu = ", ".join(f"{k} {v:.3f}" for k, v in d.cpu_ms.items())
            log(
                f"s2 round {rnd + 1} {side}: {d.rate:.0f} tasks/s "
                f"(start-up {d.startup_s:.1f} s; CPU ms/task: {cpu})"
            )
            drains[side].append(d)
    rates = {side: [d.rate for d in ds] for side, ds in drains.items()}
    ctx.rows.append(
        Row(
            "2 worker path",
            f"drain {n:,} no-op, {shape.label()}",
            "tasks/s",
            ours=rates["ours"],
            ours_label="full path",
            baseline=rates["baseline"],
            baseline_label="bare actor",
            target=Target("ratio", ">=", 0.6),
        )
    )
    ctx.rows += cpu_rows("2 worker path", drains, "bare actor", "full path")


def cpu_rows(scenario: str, drains: dict[str, list[Drain]], base: str, ours: str) -> list[Row]:
    """CPU per task in steady state: robust to a shared machine's noise, unlike rates."""
    rows = []
    for what in ("worker", "redis"):
        rows.append(
            Row(
                scenario,
                f"{what} CPU per task",
                "ms",
                ours=[d.cpu_ms[what] for d in drains["ours"] if what in d.cpu_ms],
                ours_label=ours,
                baseline=[d.cpu_ms[what] for d in drains["baseline"] if what in d.cpu_ms],
                baseline_label=base,
                higher_is_better=False,
            )
        )
    return rows


def run_scale(ctx: Context) -> None:
    n = ctx.sizes.scale_n
    one = WorkerShape(1, WORKER_PATH_SHAPE.threads, WORKER_PATH_SHAPE.prefetch)
    two = WorkerShape(2, WORKER_PATH_SHAPE.threads, WORKER_PATH_SHAPE.prefetch)
    rates: dict[str, list[float]] = {"baseline": [], "ours": []}
    busy: dict[str, list[float]] = {"baseline": [], "ours": []}
    with embedded_redis("scale") as (url, client):
        for rnd, side in ctx.sides():
            d = drain_ours(url, client, n, one if side == "baseline" else two, ctx)
            # Cores kept busy by the worker processes and Redis at that rate (2 exist in all).
            busy[side].append(d.rate * sum(d.cpu_ms.values()) / 1000)
            label = "1 process" if side == "baseline" else "2 processes"
            log(
                f"s4 round {rnd + 1} {label}: {d.rate:.0f} tasks/s, "
                f"worker + Redis busy {busy[side][-1]:.2f} cores"
            )
            rates[side].append(d.rate)
    ctx.rows.append(
        Row(
            "4 scale",
            f"drain {n:,} no-op, {WORKER_PATH_SHAPE.threads} threads/process",
            "tasks/s",
            ours=rates["ours"],
            ours_label="2 processes",
            baseline=rates["baseline"],
            baseline_label="1 process",
            target=Target("ratio", ">=", 1.7),
        )
    )
    ctx.notes.append(
        "4: cores kept busy by the worker processes plus Redis (rate x CPU per task), median: "
        f"{statistics.median(busy['baseline']):.2f} with 1 process, {statistics.median(busy['ours']):.2f} "
        f"with 2, of {os.cpu_count()} cores (the harness polls too)."
    )


def _worker_rss(proc: Proc) -> int:
    """RSS of the worker processes (the dramatiq CLI's children), not of their small parent."""
    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        return 0
    total = 0
    for kid in kids:
        try:
            total += kid.memory_info().rss
        except psutil.Error:
            continue
    return total


def _feed_and_sample(url: str, client: redis.Redis, proc: Proc, marks: tuple[int, int]) -> dict[int, int]:
    """Keep a bounded backlog of no-op tasks until `marks[-1]` are done; sample RSS at each mark."""
    large = marks[-1]
    chunk = max(100, min(5_000, marks[0] // 2))
    samples: dict[int, int] = {}
    fed = 0
    deadline = time.monotonic() + drain_timeout(large)
    while len(samples) < len(marks):
        proc.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"RSS run: {completed(client)} of {large} done in time")
        done = completed(client)
        for mark in marks:
            if mark not in samples and done >= mark:
                samples[mark] = _worker_rss(proc)
                log(f"s5 worker RSS after {done:,} tasks: {samples[mark] / 2**20:.1f} MiB")
        if fed < large and fed - done < 2 * chunk:
            step = min(chunk, large - fed)
            preload_ours(url, noop_submissions(step))
            fed += step
        else:
            time.sleep(0.05)
    return samples


def run_rss(ctx: Context) -> None:
    small, large = ctx.sizes.rss_small, ctx.sizes.rss_large
    t0 = time.monotonic()
    with (
        embedded_redis("rss") as (url, client),
        running(start_worker(url, WORKER_PATH_SHAPE, ctx.logs)) as proc,
    ):
        samples = _feed_and_sample(url, client, proc, (small, large))
    ctx.rows.append(
        Row(
            "5 cost",
            "worker RSS (2 processes)",
            "MiB",
            ours=[samples[large] / 2**20],
            ours_label=f"after {large:,}",
            baseline=[samples[small] / 2**20],
            baseline_label=f"after {small:,}",
            higher_is_better=False,
            target=Target("ratio", "<=", 1.1),
            note=f"one continuous run, {time.monotonic() - t0:.0f} s",
        )
    )
