"""What every scenario gets: the sizes for this mode, the rounds, where to write logs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.report import Row
from bench.systems import WorkerShape


@dataclass(frozen=True)
class Sizes:
    rounds: int
    api_seconds: float
    api_connections: int
    drain_n: int
    scale_n: int
    webhook_n: int
    latency_rate: float
    latency_seconds: float
    rss_small: int
    rss_large: int
    retry_failures: int
    peer_n: int
    slow_n: int  # 7: webhooks drained through the 100 ms receiver
    slow_seconds: float  # 7: wrk's run against it
    dead_n: int  # 8: tasks to the dead endpoint, queued first
    dead_rate: float  # 8: healthy webhooks per second
    dead_seconds: float  # 8: for this long
    dead_wait: float  # 8: how long after the last submit the healthy ones may still arrive
    crash_max: int  # 9: at most this many tasks fed to fill the prefetch
    crash_wait: float  # 9: the bound on "every task done" after the SIGKILL


FULL = Sizes(
    rounds=3,
    api_seconds=10,
    api_connections=32,
    drain_n=20_000,
    scale_n=10_000,
    webhook_n=5_000,
    latency_rate=200,
    latency_seconds=10,
    rss_small=10_000,
    rss_large=100_000,
    retry_failures=10,
    peer_n=5_000,
    slow_n=5_000,
    slow_seconds=10,
    dead_n=1_000,
    dead_rate=50,
    dead_seconds=30,
    dead_wait=30,
    crash_max=2_000,
    crash_wait=180,
)
QUICK = Sizes(
    rounds=1,
    api_seconds=2,
    api_connections=32,
    drain_n=500,
    scale_n=300,
    webhook_n=300,
    latency_rate=100,
    latency_seconds=2,
    rss_small=200,
    rss_large=1_000,
    retry_failures=3,
    peer_n=200,
    slow_n=200,
    slow_seconds=2,
    dead_n=50,
    dead_rate=50,
    dead_seconds=3,
    dead_wait=5,
    crash_max=300,
    crash_wait=40,
)

# The same processes x threads x prefetch for ours and the baseline in each scenario.
WORKER_PATH_SHAPE = WorkerShape(processes=2, threads=8)  # the product's defaults
WEBHOOK_SHAPE = WorkerShape(processes=2, threads=8, prefetch=16)

# A webhook body of about 200 bytes, as the issue specifies.
WEBHOOK_BODY = {
    "event": "order.created",
    "id": "ord_0123456789abcdef",
    "amount": 4200,
    "currency": "EUR",
    "customer": {"id": "cus_0123456789", "email": "someone@example.com"},
    "items": [{"sku": "SKU-1", "qty": 2}, {"sku": "SKU-2", "qty": 1}],
}
WEBHOOK_BODY_JSON = json.dumps(WEBHOOK_BODY, separators=(",", ":"))


@dataclass
class Context:
    mode: str
    sizes: Sizes
    logs: Path
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def quick(self) -> bool:
        return self.mode == "quick"

    def sides(self) -> Iterator[tuple[int, str]]:
        """(round, side) in the order baseline, ours, baseline, ours, ..."""
        for rnd in range(self.sizes.rounds):
            yield rnd, "baseline"
            yield rnd, "ours"

    def config(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "sizes": asdict(self.sizes),
            "worker_path_shape": WORKER_PATH_SHAPE.label(),
            "webhook_shape": WEBHOOK_SHAPE.label(),
            "webhook_body_bytes": len(WEBHOOK_BODY_JSON),
        }
