"""Scenario 1: POST /api/v1/tasks (a ~200 B webhook) vs a bare Litestar route answering 201, no I/O.

Both servers run side by side (the idle one costs nothing); wrk drives one at a time, alternately.
No worker runs: the submitted tasks just queue up (Redis is flushed before each of our rounds).
"""

from __future__ import annotations

import json

from bench.common import embedded_redis, free_port, log, running
from bench.context import WEBHOOK_BODY, Context
from bench.loadgen import LoadResult, closed_loop
from bench.report import Row, Target
from bench.systems import start_api, start_bare_api


def request_body(sink_url: str) -> str:
    return json.dumps(
        {"url": sink_url, "method": "POST", "headers": {"X-Bench": "1"}, "body": WEBHOOK_BODY},
        separators=(",", ":"),
    )


def run(ctx: Context) -> None:
    s = ctx.sizes
    body = request_body("http://127.0.0.1:9/hooks/orders")
    results: dict[str, list[LoadResult]] = {"baseline": [], "ours": []}
    with embedded_redis("api") as (url, client):
        port_bare, port_ours = free_port(), free_port()
        with running(start_bare_api(port_bare, ctx.logs)), running(start_api(url, port_ours, ctx.logs)):
            urls = {
                "baseline": f"http://127.0.0.1:{port_bare}/api/v1/tasks",
                "ours": f"http://127.0.0.1:{port_ours}/api/v1/tasks",
            }
            for side in ("baseline", "ours"):  # warm-up: imports, connection pools, JIT-less caches
                closed_loop(urls[side], body, connections=s.api_connections, seconds=1, workdir=ctx.logs)
            for rnd, side in ctx.sides():
                client.flushall()
                r = closed_loop(
                    urls[side], body, connections=s.api_connections, seconds=s.api_seconds, workdir=ctx.logs
                )
                log(
                    f"s1 round {rnd + 1} {side}: {r.rps:.0f} req/s p50 {r.p50_ms:.1f} ms "
                    f"p99 {r.p99_ms:.1f} ms errors {r.errors} ({r.tool})"
                )
                results[side].append(r)
            created = client.zcard("qs:idx:all")
    errors = sum(r.errors for rs in results.values() for r in rs)
    tool = results["ours"][0].tool
    labels = {"baseline_label": "bare route", "ours_label": "POST /api/v1/tasks"}
    ctx.rows += [
        Row(
            "1 API submit",
            f"throughput, {s.api_connections} conns",
            "req/s",
            ours=[r.rps for r in results["ours"]],
            baseline=[r.rps for r in results["baseline"]],
            target=Target("ratio", ">=", 0.5),
            **labels,
        ),
        Row(
            "1 API submit",
            "latency p50",
            "ms",
            ours=[r.p50_ms for r in results["ours"]],
            baseline=[r.p50_ms for r in results["baseline"]],
            higher_is_better=False,
            **labels,
        ),
        Row(
            "1 API submit",
            "latency p99",
            "ms",
            ours=[r.p99_ms for r in results["ours"]],
            baseline=[r.p99_ms for r in results["baseline"]],
            higher_is_better=False,
            target=Target("ours", "<=", 25),
            **labels,
        ),
    ]
    ctx.notes.append(
        f"1: load from {tool} ({s.api_connections} connections, {s.api_seconds:g} s a round); "
        f"{errors} non-2xx/socket errors in all; {created} tasks in Redis after the last round."
    )
