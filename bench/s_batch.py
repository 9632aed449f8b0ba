"""Scenario batch: tasks/s through `POST /api/v1/tasks/batch` (batches of 100 and of 1000) vs single
`POST /api/v1/tasks` submits, on the same API process, the same connections, in one run.

The same ~200 B webhook as scenario 1, without an `id` (each one a new task). The three ways take
turns within each round (single, 100, 1000), Redis flushed before each; no worker runs, so the
tasks just queue up. Rounds are shorter than scenario 1's: a batch round stores a few hundred
thousand tasks, and the embedded Redis's memory is the bound.
"""

from __future__ import annotations

import json
import shutil
import time
from typing import Any

from bench.common import embedded_redis, free_port, log, redis_cpu_s, running, tree_cpu_s
from bench.context import WEBHOOK_BODY, Context
from bench.loadgen import LoadResult, closed_loop, raw_closed_loop
from bench.report import Row, Target
from bench.systems import start_api

SIZES = (100, 1000)
MAX_ROUND_S = 6.0
SETTLE_S = 15.0  # at most this long for the API to finish the requests wrk left in flight


def _task(sink_url: str) -> dict[str, object]:
    return {"url": sink_url, "method": "POST", "headers": {"X-Bench": "1"}, "body": WEBHOOK_BODY}


def _load(url: str, body: str, connections: int, seconds: float, ctx: Context) -> LoadResult:
    """wrk when installed, else the minimal asyncio client (httpx.AsyncClient's CPU per request,
    on 2 cores beside the API, capped single submits near 130/s: it measured the client)."""
    if shutil.which("wrk"):
        return closed_loop(url, body, connections=connections, seconds=seconds, workdir=ctx.logs)
    return raw_closed_loop(url, body, connections=connections, seconds=seconds)


def _settled(client: Any, api_pid: int) -> int:
    """The tasks stored once the API has finished what it accepted: wrk gives up on requests in
    flight at the end of a round (a 1000-item batch can take seconds), and the API goes on storing
    them. Counted, with their CPU, in this round, not the next one after its FLUSHALL (the single
    submits, which follow the batches of 1000, were charged up to twice their tasks). Done when the
    count stands still and the API is idle (under 5% of a core) over 0.5 s."""
    stored, cpu, deadline = -1, tree_cpu_s(api_pid), time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now, cpu_now = int(client.zcard("qs:idx:all")), tree_cpu_s(api_pid)
        if now == stored and cpu_now - cpu < 0.025:
            return now
        stored, cpu = now, cpu_now
    return int(client.zcard("qs:idx:all"))


def run(ctx: Context) -> None:
    s = ctx.sizes
    seconds = min(s.api_seconds, MAX_ROUND_S)
    task = _task("http://127.0.0.1:9/hooks/orders")
    bodies = {1: json.dumps(task, separators=(",", ":"))}
    for n in SIZES:
        bodies[n] = json.dumps({"tasks": [task] * n}, separators=(",", ":"))
    rates: dict[int, list[float]] = {n: [] for n in bodies}
    latency: dict[int, list[float]] = {n: [] for n in bodies}
    cpu_us: dict[int, list[float]] = {n: [] for n in bodies}  # API process + Redis, per task
    errors = 0
    with embedded_redis("batch") as (url, client):
        port = free_port()
        # A 1000-item body is ~290 KB: inside API_MAX_BODY_BYTES's default 1 MiB.
        with running(start_api(url, port, ctx.logs, LOG_LEVEL="WARNING")) as api:
            base = f"http://127.0.0.1:{port}/api/v1/tasks"
            urls = {n: base if n == 1 else f"{base}/batch" for n in bodies}
            for n in bodies:  # warm-up
                _load(urls[n], bodies[n], s.api_connections, 1, ctx)
                _settled(client, api.pid)
            for rnd in range(s.rounds):
                for n in bodies:
                    client.flushall()
                    cpu0 = tree_cpu_s(api.pid) + redis_cpu_s(client)
                    r: LoadResult = _load(urls[n], bodies[n], s.api_connections, seconds, ctx)
                    stored = _settled(client, api.pid)
                    cpu_us[n].append(
                        (tree_cpu_s(api.pid) + redis_cpu_s(client) - cpu0) / max(stored, 1) * 1e6
                    )
                    log(
                        f"batch round {rnd + 1} size {n}: {r.rps * n:.0f} tasks/s ({r.rps:.1f} req/s, "
                        f"p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, errors {r.errors}); {stored} stored, "
                        f"{cpu_us[n][-1]:.0f} us CPU per task (API + Redis)"
                    )
                    rates[n].append(r.rps * n)
                    latency[n].append(r.p50_ms)
                    errors += r.errors
    tool = r.tool if r.tool == "wrk" else f"{r.tool} (a minimal client in the bench process: no wrk here)"
    for n in SIZES:
        labels = {"baseline_label": "single submits", "ours_label": f"batches of {n}"}
        ctx.rows += [
            Row(
                "batch submit",
                f"tasks/s, batches of {n}, {s.api_connections} conns",
                "tasks/s",
                ours=rates[n],
                baseline=rates[1],
                target=Target("ratio", ">=", 10),
                **labels,
            ),
            Row(
                "batch submit",
                f"CPU per task (API process + Redis), batches of {n}",
                "us",
                ours=cpu_us[n],
                baseline=cpu_us[1],
                higher_is_better=False,
                **labels,
            ),
            Row(
                "batch submit",
                f"latency p50 of a request, batches of {n}",
                "ms",
                ours=latency[n],
                baseline=latency[1],
                higher_is_better=False,
                **labels,
            ),
        ]
    ctx.notes.append(
        f"batch: load from {tool}, {s.api_connections} connections, {seconds:g} s a round for each of "
        f"single/100/1000; {errors} non-2xx/socket errors in all."
    )
