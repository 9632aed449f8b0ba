"""Scenario 3: webhook delivery, and the Redis memory per completed webhook task (scenario 5).

3a. Drain N webhooks to a sink answering 200 (nginx) vs a bare Dramatiq actor posting the same
    bodies with one shared httpx client per process; same processes x threads x prefetch.
3b. Submit -> delivered latency at an offered rate: ours from the client's POST to the API until
    the request reaches the (recording) sink, vs the baseline from `send` of a bare actor message
    until it reaches the sink. Both clocks are the wall clock of this one machine.
5a. Redis `used_memory` after our drain minus before the preload, per task.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import redis

from bench.common import (
    BenchError,
    embedded_redis,
    free_port,
    log,
    percentile,
    running,
    used_memory,
    wait_until,
)
from bench.context import WEBHOOK_BODY, WEBHOOK_BODY_JSON, WEBHOOK_SHAPE, Context
from bench.drain import Drain
from bench.loadgen import open_loop_calls, open_loop_http
from bench.report import Row, Target, delivery_rows
from bench.s_api import request_body
from bench.s_worker import bare_drained, cpu_rows, ours_drained
from bench.sink import start_python_sink, start_sink
from bench.systems import (
    bare_enqueue,
    bare_message,
    preload_ours,
    start_api,
    start_bare_worker,
    start_worker,
    webhook_submissions,
)


def _drain_round(side: str, url: str, client: redis.Redis, sink: str, ctx: Context) -> tuple[Drain, float]:
    """-> (the drain, Redis bytes per task or 0 for the baseline)."""
    n = ctx.sizes.webhook_n
    urls = [f"{sink}/hooks/{i}" for i in range(n)]
    client.flushall()
    if side == "baseline":
        bare_enqueue(client, [bare_message("post", u, WEBHOOK_BODY_JSON) for u in urls])
        with running(start_bare_worker(url, WEBHOOK_SHAPE, ctx.logs)) as proc:
            d = bare_drained(proc, client, n)
        return d, 0.0
    before = used_memory(client)
    preload_ours(url, webhook_submissions(urls, WEBHOOK_BODY))
    with running(start_worker(url, WEBHOOK_SHAPE, ctx.logs)) as proc:
        d = ours_drained(proc, client, n)
    after = used_memory(client)
    return d, (after - before) / n


def _arrivals(sink: str) -> dict[str, float]:
    rows = httpx.get(f"{sink}/_arrivals", timeout=10).json()
    return {path: t for path, t in rows}


def _latencies(sink: str, sent: dict[int, float], tag: str, skip: int) -> list[float]:
    """Wait for every delivery -> send-to-arrival latencies in ms, without the first `skip`."""
    got: dict[str, float] = {}

    def all_arrived() -> bool:
        got.update(_arrivals(sink))
        return len(got) >= len(sent)

    wait_until(f"{len(sent)} deliveries at the sink", all_arrived, 30, interval=0.25)
    return [(got[f"/rec/{tag}/{i}"] - t) * 1000 for i, t in sent.items() if i >= skip]


def _warm(sink: str, send: Callable[[str], None], tag: str) -> None:
    """Deliveries end to end first, enough to reach every worker process, so that start-up is not
    counted as latency (then a first second at the offered rate is not counted either)."""
    count = 2 * WEBHOOK_SHAPE.processes * WEBHOOK_SHAPE.threads
    for j in range(count):
        send(f"{sink}/rec/{tag}/warm{j}")
    seen: dict[str, float] = {}

    def arrived() -> bool:
        seen.update(_arrivals(sink))
        return len(seen) >= count

    wait_until("the warm-up deliveries", arrived, 30, interval=0.1)
    time.sleep(0.5)
    _arrivals(sink)


def _latency_round(
    side: str, url: str, client: redis.Redis, sink: str, rnd: int, ctx: Context
) -> list[float]:
    s = ctx.sizes
    skip = int(s.latency_rate)  # the first second at the offered rate warms both sides up: not counted
    count = skip + int(s.latency_rate * s.latency_seconds)
    tag = f"{side}{rnd}"
    client.flushall()
    if side == "baseline":
        with running(start_bare_worker(url, WEBHOOK_SHAPE, ctx.logs, name="bare-worker-latency")):

            def send_url(target: str) -> None:
                bare_enqueue(client, [bare_message("post", target, WEBHOOK_BODY_JSON)])

            _warm(sink, send_url, tag)
            sent = open_loop_calls(count, s.latency_rate, lambda i: send_url(f"{sink}/rec/{tag}/{i}"))
            return _latencies(sink, sent, tag, skip)
    port = free_port()
    with (
        running(start_api(url, port, ctx.logs)),
        running(start_worker(url, WEBHOOK_SHAPE, ctx.logs, name="worker-latency")),
    ):
        api = f"http://127.0.0.1:{port}/api/v1/tasks"

        def post_url(target: str) -> None:
            httpx.post(api, content=request_body(target), headers={"Content-Type": "application/json"})

        _warm(sink, post_url, tag)
        bodies = [request_body(f"{sink}/rec/{tag}/{i}").encode() for i in range(count)]
        sent, errors = open_loop_http(api, bodies, s.latency_rate)
        if errors:
            raise BenchError(f"{errors} submissions failed during the latency run")
        return _latencies(sink, sent, tag, skip)


def run(ctx: Context) -> None:
    s = ctx.sizes
    drains: dict[str, list[Drain]] = {"baseline": [], "ours": []}
    p50: dict[str, list[float]] = {"baseline": [], "ours": []}
    p99: dict[str, list[float]] = {"baseline": [], "ours": []}
    mem: list[float] = []
    with embedded_redis("webhook") as (url, client):
        port = free_port()
        sink_proc, sink_kind = start_sink(port, ctx.logs)
        with running(sink_proc):
            sink = f"http://127.0.0.1:{port}"
            for rnd, side in ctx.sides():
                d, per_task = _drain_round(side, url, client, sink, ctx)
                rate = d.rate
                log(
                    f"s3 round {rnd + 1} {side}: {rate:.0f} deliveries/s"
                    + (f", Redis {per_task:.0f} B/task" if side == "ours" else "")
                )
                drains[side].append(d)
                if side == "ours":
                    mem.append(per_task)
        rec_port = free_port()
        with running(start_python_sink(rec_port, ctx.logs)):
            rec = f"http://127.0.0.1:{rec_port}"
            for rnd, side in ctx.sides():
                lat = _latency_round(side, url, client, rec, rnd, ctx)
                p50[side].append(percentile(lat, 50))
                p99[side].append(percentile(lat, 99))
                log(
                    f"s3 latency round {rnd + 1} {side}: p50 {p50[side][-1]:.1f} ms "
                    f"p99 {p99[side][-1]:.1f} ms ({len(lat)} deliveries)"
                )
    shape = WEBHOOK_SHAPE.label()
    rates = {side: [d.rate for d in ds] for side, ds in drains.items()}
    base = {"baseline_label": "bare actor", "ours_label": "ours"}
    ctx.rows += [
        *delivery_rows(
            "3 webhook",
            f"drain {s.webhook_n:,} to {sink_kind}, {shape}",
            rates["ours"],
            rates["baseline"],
            base["baseline_label"],
            ratio=0.7,
        ),
        *cpu_rows("3 webhook", drains, "bare actor", "ours"),
        Row(
            "3 webhook",
            f"submit->delivered p50 @ {s.latency_rate:g}/s",
            "ms",
            ours=p50["ours"],
            baseline=p50["baseline"],
            higher_is_better=False,
            target=Target("ours", "<=", 15),
            **base,
        ),
        Row(
            "3 webhook",
            f"submit->delivered p99 @ {s.latency_rate:g}/s",
            "ms",
            ours=p99["ours"],
            baseline=p99["baseline"],
            higher_is_better=False,
            target=Target("ours", "<=", 60),
            **base,
        ),
        Row(
            "5 cost",
            "Redis used_memory per completed webhook",
            "B/task",
            ours=mem,
            ours_label="ours",
            higher_is_better=False,
            target=Target("ours", "<=", 2048),
        ),
    ]
    ctx.notes.append(
        f"3: throughput sink {sink_kind}; latency sink: the recording Python sink (bench/sink.py); "
        f"body {len(WEBHOOK_BODY_JSON)} B; API request body {len(request_body(sink))} B; "
        f"latency baseline = bare actor message sent from the harness (no API)."
    )
