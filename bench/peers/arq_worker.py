"""arq: `arq bench.peers.arq_worker.WorkerSettings` (asyncio, results kept as arq does by default)."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from arq.connections import RedisSettings


async def noop(ctx: dict[str, Any]) -> None:
    return None


class WorkerSettings:
    functions: ClassVar[list[Any]] = [noop]
    redis_settings = RedisSettings.from_dsn(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    max_jobs = int(os.environ.get("BENCH_THREADS", "8"))
    # arq polls its queue (default every 0.5 s, reading up to 100 jobs): that alone caps a drain at
    # ~200 jobs/s. 0.1 s matches the product's idle poll (dramatiq_worker_timeout=100).
    poll_delay = float(os.environ.get("BENCH_ARQ_POLL_DELAY", "0.1"))
    handle_signals = True


# arq logs every job at INFO; the peers run quiet, as the product does (`--custom-log-dict`).
QUIET_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "level": "WARNING"}},
    "loggers": {"arq": {"handlers": ["stderr"], "level": "WARNING"}},
}
