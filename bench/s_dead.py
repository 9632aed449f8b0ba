"""Scenario 8: a dead endpoint must not starve the healthy ones.

Ours: `dead_n` webhooks to an endpoint that accepts and never answers (bench/slow_receiver.py
--mode hang; the default 30 s request timeout) are submitted first, then the worker starts (default
settings), then healthy webhooks go through the API at `dead_rate`/s for `dead_seconds` to the
recording sink (bench/sink.py): their submit->delivered p50/p99, and the most requests the dead
endpoint held at once (target: at most the per-destination cap, WEBHOOK_MAX_INFLIGHT_PER_HOST).
Baseline: the same healthy webhooks with no dead backlog, so the ratio is the price of the dead one.

A healthy webhook not delivered `dead_wait` s after the last submit counts with the time it waited
so far (a lower bound), so a starved run reports a finite, failing p99 instead of hanging.
"""

from __future__ import annotations

import time

import httpx

from bench.common import BenchError, embedded_redis, free_port, log, percentile, running, wait_until
from bench.context import WEBHOOK_BODY, Context
from bench.loadgen import open_loop_http
from bench.report import Row, Target
from bench.sink import start_python_sink
from bench.systems import start_api
from bench.world import (
    receiver_stats,
    reset_receiver,
    setting_value,
    start_default_worker,
    start_receiver,
    submit_all,
    webhook_request,
)


def _arrivals(sink: str) -> dict[str, float]:
    return dict(httpx.get(f"{sink}/_arrivals", timeout=10).json())


def _healthy(sink: str, api: str, tag: str, ctx: Context) -> tuple[list[float], int]:
    """Healthy webhooks at the offered rate -> (latencies in ms, how many did not arrive in time)."""
    s = ctx.sizes
    skip = int(s.dead_rate)  # the first second is not counted (as in scenario 3)
    count = skip + int(s.dead_rate * s.dead_seconds)
    bodies = [webhook_request(f"{sink}/rec/{tag}/{i}", WEBHOOK_BODY) for i in range(count)]
    sent, errors = open_loop_http(api, bodies, s.dead_rate)
    if errors:
        raise BenchError(f"8: {errors} healthy submissions failed")
    got: dict[str, float] = {}

    def all_arrived() -> bool:
        got.update(_arrivals(sink))
        return len(got) >= len(sent)

    deadline = time.monotonic() + s.dead_wait
    while not all_arrived() and time.monotonic() < deadline:
        time.sleep(0.25)
    now = time.time()
    late = 0
    latencies = []
    for i, t in sent.items():
        if i < skip:
            continue
        arrived = got.get(f"/rec/{tag}/{i}")
        if arrived is None:
            late += 1
        latencies.append(((arrived if arrived is not None else now) - t) * 1000)
    return latencies, late


def run(ctx: Context) -> None:
    s = ctx.sizes
    cap = int(setting_value("WEBHOOK_MAX_INFLIGHT_PER_HOST", "256"))
    p50: dict[str, list[float]] = {"baseline": [], "ours": []}
    p99: dict[str, list[float]] = {"baseline": [], "ours": []}
    late: dict[str, list[float]] = {"baseline": [], "ours": []}
    peak: list[float] = []
    with embedded_redis("dead") as (url, client):
        dead_port, sink_port, api_port = free_port(), free_port(), free_port()
        with (
            running(start_receiver("rx-dead", dead_port, ctx.logs, "--mode", "hang")),
            running(start_python_sink(sink_port, ctx.logs)),
            running(start_api(url, api_port, ctx.logs)),
        ):
            dead = f"http://127.0.0.1:{dead_port}"
            sink = f"http://127.0.0.1:{sink_port}"
            api = f"http://127.0.0.1:{api_port}/api/v1/tasks"
            for rnd, side in ctx.sides():
                tag = f"{side}{rnd}"
                client.flushall()
                _arrivals(sink)
                reset_receiver(dead)
                if side == "ours":
                    bodies = [webhook_request(f"{dead}/dead/{i}", WEBHOOK_BODY) for i in range(s.dead_n)]
                    if submit_all(api, bodies):
                        raise BenchError("8: submissions to the dead endpoint refused")
                # A dead endpoint holds connections until the timeout: stop the worker quickly after.
                with running(start_default_worker(url, ctx.logs, name="worker-dead"), timeout=5) as proc:
                    if side == "ours":

                        def reached_dead() -> bool:
                            proc.check_alive()
                            return int(receiver_stats(dead)["requests"]) > 0

                        wait_until("the worker's first request to the dead endpoint", reached_dead, 30, 0.1)
                    else:
                        httpx.post(api, content=webhook_request(f"{sink}/rec/{tag}/warm"), timeout=10)
                        wait_until("the warm-up delivery", lambda: bool(_arrivals(sink)), 30, interval=0.1)
                    lat, missing = _healthy(sink, api, tag, ctx)
                    proc.check_alive()
                if side == "ours":
                    peak.append(float(receiver_stats(dead)["max_active"]))
                p50[side].append(percentile(lat, 50))
                p99[side].append(percentile(lat, 99))
                late[side].append(100 * missing / len(lat))
                log(
                    f"s8 round {rnd + 1} {side}: healthy p50 {p50[side][-1]:.0f} ms "
                    f"p99 {p99[side][-1]:.0f} ms, "
                    f"{missing} of {len(lat)} not delivered within {s.dead_wait:g} s"
                    + (f"; dead endpoint peak {peak[-1]:.0f} requests" if side == "ours" else "")
                )
    where = f"@ {s.dead_rate:g}/s, {s.dead_n:,} dead-endpoint tasks queued first"
    labels = {"baseline_label": "no dead endpoint", "ours_label": "with dead endpoint"}
    ctx.rows += [
        Row(
            "8 dead endpoint",
            f"healthy submit->delivered p50 {where}",
            "ms",
            ours=p50["ours"],
            baseline=p50["baseline"],
            higher_is_better=False,
            **labels,
        ),
        Row(
            "8 dead endpoint",
            "healthy submit->delivered p99",
            "ms",
            ours=p99["ours"],
            baseline=p99["baseline"],
            higher_is_better=False,
            target=Target("ours", "<=", 1000),
            **labels,
        ),
        Row(
            "8 dead endpoint",
            f"healthy not delivered {s.dead_wait:g} s after the last submit",
            "%",
            ours=late["ours"],
            baseline=late["baseline"],
            higher_is_better=False,
            **labels,
        ),
        Row(
            "8 dead endpoint",
            "dead endpoint's peak concurrent requests",
            "requests",
            ours=peak,
            ours_label="ours",
            higher_is_better=False,
            target=Target("ours", "<=", cap),
        ),
    ]
    ctx.notes.append(
        f"8: dead endpoint = bench/slow_receiver.py --mode hang (default 30 s request timeout); the cap "
        f"checked is WEBHOOK_MAX_INFLIGHT_PER_HOST = {cap}; healthy ones not delivered in time count "
        "with the time they had waited (a lower bound)."
    )
