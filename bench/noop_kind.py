"""The `noop` task kind for the worker-path benchmarks, loaded with TASK_MODULES=bench.noop_kind.

It goes through the whole path (claim, run, record the attempt, complete) and does nothing else.
"""

from __future__ import annotations

from typing import Any

from queue_system.kinds.registry import RunContext, task_kind


@task_kind("noop")
def noop(payload: Any, ctx: RunContext) -> None:
    return None
