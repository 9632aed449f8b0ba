"""Scenario 6: retry cadence. Webhooks to a receiver that always answers 500, with
WORKER_RETRY_INTERVAL=1s: the spacing between recorded attempts should be 1 s +- 0.25 s (p95).

Spacing is read twice: from the attempts the product records (`started_at`), and from when the
requests reached the receiver (bench/sink.py records them), which is what a receiver sees.
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict

import httpx
import redis

from bench.common import embedded_redis, free_port, log, percentile, running, wait_until
from bench.context import WEBHOOK_BODY, WEBHOOK_SHAPE, Context
from bench.report import Row, Target
from bench.sink import start_python_sink
from bench.systems import KEYS, preload_ours, start_worker, webhook_submissions
from queue_system.storage.codec import attempt_from_json

TASKS = 3
INTERVAL_MS = 1000


def _histories(client: redis.Redis) -> list[list[int]]:
    ids = client.zrange(KEYS.index(), 0, -1)
    out = []
    for task_id in ids:
        entries = client.lrange(KEYS.history(task_id), 0, -1)
        out.append(sorted(attempt_from_json(e).started_at for e in entries))
    return out


def _gaps(times: list[list[float]]) -> list[float]:
    return [b - a for seq in times for a, b in itertools.pairwise(seq)]


def _deviation_rows(name: str, gaps: list[float], attempts: int) -> list[Row]:
    deviation = [abs(g - INTERVAL_MS) for g in gaps]
    where = f"{name}, {TASKS} tasks x {attempts} attempts"
    return [
        Row(
            "6 retry cadence",
            f"spacing median ({where})",
            "ms",
            ours=[statistics.median(gaps)],
            ours_label="ours",
            higher_is_better=False,
        ),
        Row(
            "6 retry cadence",
            f"|spacing - 1 s| p95 ({where})",
            "ms",
            ours=[percentile(deviation, 95)],
            ours_label="ours",
            higher_is_better=False,
            target=Target("ours", "<=", 250) if name == "recorded" else None,
        ),
    ]


def run(ctx: Context) -> None:
    attempts = ctx.sizes.retry_failures
    timeout = attempts * INTERVAL_MS / 1000 * 1.5 + 20
    with embedded_redis("retry") as (url, client):
        port = free_port()
        with running(start_python_sink(port, ctx.logs)):
            sink = f"http://127.0.0.1:{port}"
            urls = [f"{sink}/fail/{i}" for i in range(TASKS)]
            preload_ours(url, webhook_submissions(urls, WEBHOOK_BODY))
            # This measures the retry schedule's precision: the sink fails every attempt, which would
            # open the destination's circuit breaker after 5 and park the tasks (scenario 8 measures
            # that), so the breaker is kept out of the way here.
            env = {"WORKER_RETRY_INTERVAL": f"{INTERVAL_MS}ms", "WEBHOOK_BREAKER_THRESHOLD": "10000"}
            with running(start_worker(url, WEBHOOK_SHAPE, ctx.logs, name="worker-retry", **env)) as proc:

                def enough() -> bool:
                    proc.check_alive()
                    return all(len(h) >= attempts for h in _histories(client))

                wait_until(f"{attempts} attempts of each task", enough, timeout, interval=0.2)
                histories = [h[:attempts] for h in _histories(client)]
            arrivals: dict[str, list[float]] = defaultdict(list)
            for path, t in httpx.get(f"{sink}/_arrivals", timeout=10).json():
                arrivals[path].append(t * 1000)
    recorded = _gaps([[float(t) for t in h] for h in histories])
    received = _gaps([sorted(ts)[:attempts] for ts in arrivals.values()])
    log(
        f"s6 recorded spacing: median {statistics.median(recorded):.0f} ms, max {max(recorded):.0f} ms; "
        f"at the receiver: median {statistics.median(received):.0f} ms"
    )
    ctx.rows += _deviation_rows("recorded", recorded, attempts)
    ctx.rows += _deviation_rows("at receiver", received, attempts)
