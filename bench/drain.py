"""Timing a worker while it drains a pre-loaded queue.

The clock starts when 2% of the tasks are done (so process start-up and imports are not counted,
for either side) and stops when all are; the rate is the tasks done in between over that time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.common import BenchError, Proc


@dataclass(frozen=True)
class Drain:
    rate: float  # tasks/s in steady state
    startup_s: float  # from spawn to the first 2% done
    total_s: float  # from spawn to all done
    cpu_ms: dict[str, float] = field(default_factory=dict)  # CPU ms per task in steady state, by process


CpuProbe = Callable[[], dict[str, float]]  # -> cumulative CPU seconds by name ("worker", "redis")


def drain(
    proc: Proc,
    done: Callable[[], int],
    total: int,
    *,
    timeout: float,
    failed: Callable[[], int] | None = None,
    cpu: CpuProbe | None = None,
    poll: float = 0.01,
) -> Drain:
    """Poll `done()` until it reaches `total`; raise BenchError on timeout, death or a failed task."""
    t_spawn = time.monotonic()
    deadline = t_spawn + timeout
    threshold = max(1, int(total * 0.02))
    t_a: float | None = None
    n_a = 0
    cpu_a: dict[str, float] = {}
    while time.monotonic() < deadline:
        proc.check_alive()
        n = done()
        now = time.monotonic()
        if t_a is None and n >= threshold:
            t_a, n_a = now, n
            cpu_a = cpu() if cpu else {}
        if n >= total:
            assert t_a is not None
            elapsed = max(now - t_a, 1e-3)
            rate = (total - n_a) / elapsed if total > n_a else total / max(now - t_spawn, 1e-3)
            cpu_ms = {}
            if cpu and total > n_a:
                cpu_b = cpu()
                cpu_ms = {k: (cpu_b[k] - cpu_a[k]) * 1000 / (total - n_a) for k in cpu_b if k in cpu_a}
            return Drain(rate=rate, startup_s=t_a - t_spawn, total_s=now - t_spawn, cpu_ms=cpu_ms)
        if failed is not None and failed():
            raise BenchError(f"{proc.name}: {failed()} task(s) failed during the drain")
        time.sleep(poll)
    raise BenchError(f"{proc.name}: drained {done()} of {total} in {timeout:g}s")
