"""Scenario 8: a dead endpoint must not starve the healthy ones, on another host or on the same one.

Ours: `dead_n` webhooks to an endpoint that accepts and never answers (the default 30 s request
timeout) are submitted first, then the worker starts (default settings), then healthy webhooks go
through the API at `dead_rate`/s for `dead_seconds` to a recording endpoint: their
submit->delivered p50/p99, and the most requests the dead endpoint held at once. Two variants:

- "other host": the dead endpoint is its own receiver (bench/slow_receiver.py --mode hang), the
  healthy one the recording sink (bench/sink.py); target: the dead one holds at most
  WEBHOOK_MAX_INFLIGHT_PER_ENDPOINT requests (its host's cap is no tighter here);
- "same host": one receiver process on one host:port serves both, a hanging path and a recording
  one (bench/slow_receiver.py --dead-prefix /dead); target: the dead path holds at most
  WEBHOOK_MAX_INFLIGHT_PER_ENDPOINT of the host's slots, and the healthy path's p99 stays within
  1 s (issue 17: one customer's broken endpoint on a shared host must not hold the others).

Baseline: the same healthy webhooks with no dead backlog, so the ratio is the price of the dead one.

A healthy webhook not delivered `dead_wait` s after the last submit counts with the time it waited
so far (a lower bound), so a starved run reports a finite, failing p99 instead of hanging.
"""

from __future__ import annotations

import contextlib
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


def _round(
    ctx: Context, url: str, dead: str, sink: str, api: str, side: str, tag: str, peak_key: str
) -> tuple[list[float], int, float | None]:
    """One round of one side -> (healthy latencies in ms, how many were late, the dead one's peak)."""
    s = ctx.sizes
    if side == "ours":
        # One endpoint (one customer's broken receiver): the same path for all; the body tells them apart.
        bodies = [webhook_request(f"{dead}/dead/hook", {"i": i}) for i in range(s.dead_n)]
        if submit_all(api, bodies):
            raise BenchError("8: submissions to the dead endpoint refused")
    # A dead endpoint holds connections until the timeout: stop the worker quickly after.
    with running(start_default_worker(url, ctx.logs, name="worker-dead"), timeout=5) as proc:
        if side == "ours":

            def reached_dead() -> bool:
                proc.check_alive()
                return int(receiver_stats(dead)[peak_key.replace("max_active", "requests")]) > 0

            wait_until("the worker's first request to the dead endpoint", reached_dead, 30, 0.1)
        else:
            httpx.post(api, content=webhook_request(f"{sink}/rec/{tag}/warm"), timeout=10)
            wait_until("the warm-up delivery", lambda: bool(_arrivals(sink)), 30, interval=0.1)
        lat, missing = _healthy(sink, api, tag, ctx)
        proc.check_alive()
    return lat, missing, float(receiver_stats(dead)[peak_key]) if side == "ours" else None


def _variant(ctx: Context, same_host: bool) -> dict[str, dict[str, list[float]]]:
    """-> {"p50"|"p99"|"late": {side: [per round]}, "peak": {"ours": [...]}}."""
    out: dict[str, dict[str, list[float]]] = {k: {"baseline": [], "ours": []} for k in ("p50", "p99", "late")}
    out["peak"] = {"ours": []}
    name = "same" if same_host else "dead"
    with embedded_redis(name) as (url, client):
        dead_port, sink_port, api_port = free_port(), free_port(), free_port()
        if same_host:  # one process, one port: /dead/... hangs, /rec/... is recorded
            receivers = [
                start_receiver("rx-shared", dead_port, ctx.logs, "--delay-ms", "0", "--dead-prefix", "/dead")
            ]
            sink_port, peak_key = dead_port, "dead_max_active"
        else:
            receivers = [start_receiver("rx-dead", dead_port, ctx.logs, "--mode", "hang")]
            receivers.append(start_python_sink(sink_port, ctx.logs))
            peak_key = "max_active"
        with contextlib.ExitStack() as stack:
            for proc in receivers:
                stack.enter_context(running(proc))
            stack.enter_context(running(start_api(url, api_port, ctx.logs)))
            dead = f"http://127.0.0.1:{dead_port}"
            sink = f"http://127.0.0.1:{sink_port}"
            api = f"http://127.0.0.1:{api_port}/api/v1/tasks"
            for rnd, side in ctx.sides():
                tag = f"{name}{side}{rnd}"
                client.flushall()
                _arrivals(sink)
                reset_receiver(dead)
                lat, missing, peak = _round(ctx, url, dead, sink, api, side, tag, peak_key)
                if peak is not None:
                    out["peak"]["ours"].append(peak)
                out["p50"][side].append(percentile(lat, 50))
                out["p99"][side].append(percentile(lat, 99))
                out["late"][side].append(100 * missing / len(lat))
                p50, p99 = out["p50"][side][-1], out["p99"][side][-1]
                log(
                    f"s8 {'same host' if same_host else 'other host'} round {rnd + 1} {side}: healthy p50 "
                    f"{p50:.0f} ms p99 {p99:.0f} ms, {missing} of {len(lat)} "
                    f"not delivered within {ctx.sizes.dead_wait:g} s"
                    + (f"; dead endpoint peak {peak:.0f} requests" if peak is not None else "")
                )
    return out


def run(ctx: Context) -> None:
    s = ctx.sizes
    host_cap = int(setting_value("WEBHOOK_MAX_INFLIGHT_PER_HOST", "256"))
    cap = min(int(setting_value("WEBHOOK_MAX_INFLIGHT_PER_ENDPOINT", "64")), host_cap)
    where = f"@ {s.dead_rate:g}/s, {s.dead_n:,} dead-endpoint tasks queued first"
    labels = {"baseline_label": "no dead endpoint", "ours_label": "with dead endpoint"}
    for same_host in (False, True):
        m = _variant(ctx, same_host)
        group = "8 dead endpoint, same host" if same_host else "8 dead endpoint"
        ctx.rows += [
            Row(
                group,
                f"healthy submit->delivered p50 {where}",
                "ms",
                ours=m["p50"]["ours"],
                baseline=m["p50"]["baseline"],
                higher_is_better=False,
                **labels,
            ),
            Row(
                group,
                "healthy submit->delivered p99",
                "ms",
                ours=m["p99"]["ours"],
                baseline=m["p99"]["baseline"],
                higher_is_better=False,
                target=Target("ours", "<=", 1000),
                **labels,
            ),
            Row(
                group,
                f"healthy not delivered {s.dead_wait:g} s after the last submit",
                "%",
                ours=m["late"]["ours"],
                baseline=m["late"]["baseline"],
                higher_is_better=False,
                **labels,
            ),
            Row(
                group,
                "dead endpoint's peak concurrent requests",
                "requests",
                ours=m["peak"]["ours"],
                ours_label="ours",
                higher_is_better=False,
                target=Target("ours", "<=", cap),
            ),
        ]
    ctx.notes.append(
        f"8: dead endpoint = bench/slow_receiver.py --mode hang (default 30 s request timeout); "
        f"'same host': one bench/slow_receiver.py --dead-prefix /dead serves the dead path and the "
        f"healthy one on one host:port. The cap checked is the endpoint's, "
        f"WEBHOOK_MAX_INFLIGHT_PER_ENDPOINT = {cap} (host cap {host_cap}); healthy ones not delivered "
        "in time count with the time they had waited (a lower bound)."
    )
