"""Task kinds the worker-health tests need, loaded through TASK_MODULES=tests.health_kinds."""

from __future__ import annotations

import os
import threading
import time

from dramatiq.worker import _ConsumerThread

from queue_system.kinds import RunContext, task_kind


@task_kind("whoami", payload=str)
def whoami(text: str, ctx: RunContext) -> int:
    """The worker process that ran it (a short nap, so a batch spreads over the processes)."""
    time.sleep(0.05)
    return os.getpid()


@task_kind("stop_consumers", payload=str)
def stop_consumers(text: str, ctx: RunContext) -> int:
    """Stops this process's consumer threads: the process lives on but consumes no more."""
    consumers = [t for t in threading.enumerate() if isinstance(t, _ConsumerThread)]
    for consumer in consumers:
        consumer.stop()
    return len(consumers)
