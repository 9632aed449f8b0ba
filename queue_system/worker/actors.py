"""The actors, one per queue: thin, they hand the task id and token to the runtime.

Retries here are Dramatiq's and only cover infrastructure errors (Redis unreachable while claiming
or recording): the handler's own failures are caught by the runner and retried by our policy.
"""

from __future__ import annotations

from typing import Any

import dramatiq

from queue_system.storage.dramatiq_wire import actor_name
from queue_system.worker.runtime import current

_OPTIONS: dict[str, Any] = {
    "max_retries": 100,
    "min_backoff": 500,
    "max_backoff": 30_000,
    "time_limit": 2 * 3_600_000,  # our own timeouts bound a task; this only stops a runaway thread
}


@dramatiq.actor(actor_name=actor_name("default"), queue_name="default", priority=10, **_OPTIONS)
def run_task(task_id: str, token: int) -> None:
    current().run("default", task_id, token)


# The same work on the `priority` queue. Dramatiq hands a worker's prefetched messages to its
# threads lowest priority number first, so these overtake a backlog on `default`.
@dramatiq.actor(actor_name=actor_name("priority"), queue_name="priority", priority=0, **_OPTIONS)
def run_task_priority(task_id: str, token: int) -> None:
    current().run("priority", task_id, token)
