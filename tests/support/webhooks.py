"""Running one webhook task in-process, with a DNS answer of the test's choosing."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import cast

import httpx
import redis

from queue_system.config.settings import Settings
from queue_system.kinds import load_kinds
from queue_system.kinds.webhook_security import egress_transport
from queue_system.service.runner import InFlight, TaskRunner
from queue_system.storage.keys import Keys
from queue_system.storage.worker_store import RedisTaskStore


class StubDNS:
    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    def __call__(self, host: str, port: int) -> Sequence[str]:
        return [self.table[host]]


def run_task(redis_client: redis.Redis, settings: Settings, task_id: str, dns: StubDNS) -> None:
    """One attempt of `task_id`, as a worker runs it (its runner, the egress-guarded client)."""
    store = RedisTaskStore(redis_client, Keys())
    client = httpx.Client(
        transport=egress_transport(settings, dns), follow_redirects=settings.security.follow_redirects
    )
    with client:
        runner = TaskRunner(store, load_kinds(settings), settings, client, InFlight(), threading.Event())
        runner.run(task_id, int(cast(str, redis_client.hget(f"qs:task:{task_id}", "token"))))
