"""The reconciler's walk for stranded tasks, on a real Redis."""

from __future__ import annotations

import pytest
import redis

from queue_system.service import reconciler
from queue_system.service.reconciler import Reconciler
from queue_system.service.runner import InFlight
from queue_system.storage.worker_store import RedisTaskStore
from tests.support.store import create, lose_message, queued_messages


def test_the_walk_finds_a_stranded_task_beyond_the_first_slice_and_starts_over(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconciler, "WALK_SLICE", 2)
    for i in range(5):
        create(redis_url, f"w{i}", now=1_000 + i)
    lose_message(redis_client, "w3", 1)
    m = Reconciler(store, InFlight(), lease_ms=15_000, poll_interval_ms=100, retention_ms=60_000)
    now = 1_000 + reconciler.STRANDED_AFTER_MS + 10

    assert [m.redispatch_stranded(now) for _ in range(3)] == [0, 1, 0]  # slices w0-w1, w2-w3, w4
    assert ["w3", 2] in [msg["args"] for msg in queued_messages(redis_client)]
    lose_message(redis_client, "w0", 1)
    assert m.redispatch_stranded(now) == 1  # the walk started over
