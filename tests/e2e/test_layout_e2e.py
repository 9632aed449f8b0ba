"""A Redis an older release wrote (layout 1, no version) under a real API and worker: the first to
start upgrades it, both then serve it, and the worker runs a task that was queued before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis

from queue_system.storage import dramatiq_wire
from queue_system.storage.keys import LAYOUT_VERSION, Keys
from tests.e2e import support
from tests.support.layout import old_task

pytestmark = pytest.mark.e2e
K = Keys()


def test_processes_started_on_layout_1_upgrade_it_once_and_serve_it(
    redis_client: redis.Redis, redis_url: str, e2e_logs: Path
) -> None:
    old_task(redis_client, "order:7", payload="queued before the upgrade")
    old_task(redis_client, "order", payload="kept", attempts=1)  # (in layout 1, `order:history`'s key)
    message: dict[str, Any] = {  # as lua/common.lua `dispatch` writes it
        "queue_name": "default",
        "actor_name": dramatiq_wire.actor_name("default"),
        "args": ["order:7", 1],
        "kwargs": {},
        "options": {"redis_message_id": "order:7#1"},
        "message_id": "order:7#1",
        "message_timestamp": 1_000,
    }
    redis_client.hset(K.messages("default"), message["message_id"], msgspec.json.encode(message).decode())
    redis_client.rpush(K.queue("default"), message["message_id"])

    with support.stack(redis_url, e2e_logs) as running:
        assert redis_client.get(K.layout) == str(LAYOUT_VERSION)
        logs = running.api.log() + running.worker.log()
        assert logs.count("key layout upgraded to 2") == 1, logs[-3000:]
        with httpx.Client(base_url=running.base_url, timeout=10) as api:
            done = support.wait_for_status(api, "order:7", "completed", timeout=20)
            assert done["result"] == "echo: queued before the upgrade"
            order = support.get_task(api, "order")
            # Its history came along (the reconciler may have run it again since: it had no message).
            assert order["payload"] == "kept" and order["attempt_history"][0]["outcome"] == "transient"
            assert api.get("/api/v1/tasks/order:history").status_code == 404
