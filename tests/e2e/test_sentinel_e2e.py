"""The whole system through Sentinel: an API and a worker given only REDIS_SENTINELS (and REDIS_URL
for the password), a primary, one replica and one sentinel on loopback. A webhook is delivered; the
primary is SIGKILLed; the API answers 503 while there is no primary and 201 again once the replica
is promoted and the old primary is back as its replica (REDIS_MIN_REPLICAS=1), and the same worker,
never restarted, delivers again. The long failover test under load is `make test-ha` (tests/ha).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from tests.e2e import support
from tests.e2e.support import wait_for_status
from tests.support.receiver import Receiver
from tests.support.sentinel_group import RedisGroup

pytestmark = pytest.mark.e2e


def _submit_until_created(api: httpx.Client, body: Mapping[str, object], timeout: float) -> list[int]:
    """POST `body` (one id: retries are safe) until 201; -> every status seen, in order."""
    seen: list[int] = []

    def created() -> bool:
        try:
            response = api.post("/api/v1/tasks", json=body)
        except httpx.TransportError:
            return False
        seen.append(response.status_code)
        if response.status_code == 503:
            assert response.headers["retry-after"].isdigit(), response.headers
            assert response.headers["content-type"].startswith("application/problem+json")
        else:
            assert response.status_code in (200, 201), response.text
        return response.status_code in (200, 201)

    assert support.poll(created, timeout, interval=0.2), f"no 201 within {timeout}s; statuses {seen}"
    return seen


def test_api_and_worker_run_through_sentinel_and_a_failover(
    tmp_path: Path, e2e_logs: Path, receiver: Receiver
) -> None:
    env = {"REDIS_MIN_REPLICAS": "1", "REDIS_MIN_REPLICAS_TIMEOUT": "500ms", "WORKER_LEASE": "3s"}
    with RedisGroup(tmp_path, replicas=1, sentinels=1, down_after_ms=1000) as group:
        env |= group.env()
        redis_url = env.pop("REDIS_URL")
        with (
            support.stack(redis_url, e2e_logs, **env) as running,
            httpx.Client(base_url=running.base_url, timeout=15) as api,
        ):
            running.api.expect_log("Redis: Sentinel service 'qs'")
            first = support.submit(api, {"url": receiver.url("/before"), "method": "POST"})
            wait_for_status(api, first, "completed", timeout=15)

            old = group.primary()
            old.kill()
            killed_at = time.monotonic()
            body = {"id": str(uuid.uuid4()), "url": receiver.url("/after"), "method": "POST"}
            # No primary for at least down-after-milliseconds (1 s): a 503 that says retry.
            outage = api.post("/api/v1/tasks", json=body)
            assert outage.status_code == 503, outage.text
            assert outage.headers["retry-after"].isdigit()
            assert outage.json()["type"].startswith("urn:queue-system:problem:storage-")
            new, _ = group.wait_primary_changed(old, timeout=20)
            group.restart_as_replica(old, new)
            group.wait_replica(old, timeout=20)

            statuses = _submit_until_created(api, body, timeout=15)
            rto = time.monotonic() - killed_at
            wait_for_status(api, str(body["id"]), "completed", timeout=20)
            assert receiver.wait_for(2, timeout=5)
            assert [r.path for r in receiver.requests][-1] == "/after"
            assert running.api.running and running.worker.running  # nothing was restarted
            print(f"failover to {new.name}: 201 again {rto:.1f}s after the kill; statuses {statuses}")
