"""Scenario 7: a receiver answering in 100 ms (bench/slow_receiver.py, asyncio, its own process).

Ours: N webhooks submitted through the API, then `cmd/worker.py` at the product's default settings
(nothing but REDIS_URL set: today 2 processes x 8 threads, Dramatiq's prefetch) drains them.
Baseline: `wrk -c 256` against the same receiver, the rate it can take from a client that keeps
256 requests in flight. Alternately, the receiver's counters reset before each of our drains.
"""

from __future__ import annotations

import statistics

import redis

from bench.common import BenchError, log, running
from bench.context import WEBHOOK_BODY, WEBHOOK_BODY_JSON, Context
from bench.drain import Drain
from bench.loadgen import closed_loop
from bench.report import Row, delivery_rows
from bench.s_worker import ours_drained
from bench.world import (
    delayed_receiver_and_api,
    receiver_stats,
    reset_receiver,
    start_default_worker,
    submit_all,
    webhook_request,
)

DELAY_MS = 100
WRK_CONNECTIONS = 256


def _ours(url: str, client: redis.Redis, api: str, rx: str, ctx: Context) -> tuple[Drain, int]:
    """-> (the drain, the most requests the receiver held at once)."""
    n = ctx.sizes.slow_n
    client.flushall()
    refused = submit_all(api, [webhook_request(f"{rx}/hooks/{i}", WEBHOOK_BODY) for i in range(n)])
    if refused:
        raise BenchError(f"7: {refused} of {n} submissions refused")
    reset_receiver(rx)
    with running(start_default_worker(url, ctx.logs, name="worker-slow")) as proc:
        d = ours_drained(proc, client, n)
    return d, int(receiver_stats(rx)["max_active"])


def run(ctx: Context) -> None:
    s = ctx.sizes
    rates: dict[str, list[float]] = {"baseline": [], "ours": []}
    cpu: list[float] = []
    peak: list[float] = []
    wrk_p99: list[float] = []
    with delayed_receiver_and_api("slow", "rx-100ms", DELAY_MS, ctx.logs) as (url, client, rx, api):
        for rnd, side in ctx.sides():
            if side == "baseline":
                r = closed_loop(
                    f"{rx}/wrk",
                    WEBHOOK_BODY_JSON,
                    connections=WRK_CONNECTIONS,
                    seconds=s.slow_seconds,
                    workdir=ctx.logs,
                )
                rates[side].append(r.rps)
                wrk_p99.append(r.p99_ms)
                log(
                    f"s7 round {rnd + 1} {r.tool} -c {WRK_CONNECTIONS}: {r.rps:.0f} req/s "
                    f"p99 {r.p99_ms:.0f} ms"
                )
                continue
            d, active = _ours(url, client, api, rx, ctx)
            rates[side].append(d.rate)
            cpu.append(d.cpu_ms.get("worker", 0.0))
            peak.append(active)
            log(
                f"s7 round {rnd + 1} ours: {d.rate:.0f} deliveries/s, "
                f"{active} requests in flight at most, "
                f"worker CPU {cpu[-1]:.2f} ms/delivery"
            )
    ctx.rows += [
        *delivery_rows(
            "7 slow receiver",
            f"{DELAY_MS} ms receiver: drain {s.slow_n:,} (default settings) vs wrk",
            rates["ours"],
            rates["baseline"],
            f"wrk -c {WRK_CONNECTIONS}",
            ratio=0.4,
        ),
        Row(
            "7 slow receiver",
            "requests in flight at the receiver, peak",
            "requests",
            ours=peak,
            ours_label="ours",
            baseline=[float(WRK_CONNECTIONS)],
            baseline_label="wrk",
        ),
        Row(
            "7 slow receiver",
            "worker CPU per delivery",
            "ms",
            ours=cpu,
            ours_label="ours",
            higher_is_better=False,
        ),
    ]
    ctx.notes.append(
        f"7: receiver bench/slow_receiver.py --delay-ms {DELAY_MS} (own process); ours at the default "
        f"worker settings (only REDIS_URL set); wrk p99 {statistics.median(wrk_p99):.0f} ms (the "
        f"receiver's own floor is {DELAY_MS} ms)."
    )
