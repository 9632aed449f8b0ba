"""Signing in to the dashboard and reading its CSRF tokens, as a browser would."""

from __future__ import annotations

import re
import time
from typing import Any

import redis
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.api.keys import KeyRing
from queue_system.config.settings import load_settings
from queue_system.domain.models import Attempt, AttemptResult, Outcome, TaskStatus
from queue_system.domain.retry import Decision
from queue_system.storage.types import Claim
from queue_system.storage.worker_store import RedisTaskStore

WRITE_KEY = "write-key-0123456789abcdef"
READ_KEY = "read-key-0123456789abcdef"


def make_client(redis_url: str, keyring: KeyRing | None) -> TestClient[Any]:
    """The app on `redis_url`; `keyring` None: authentication off, as in development."""
    return TestClient(
        create_app(
            load_settings({"REDIS_URL": redis_url, "EGRESS_ALLOW_CIDRS": "127.0.0.0/8"}), keyring=keyring
        )
    )


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def sign_in(client: TestClient[Any], key: str) -> Any:
    form = client.get("/dashboard/login")
    return client.post(
        "/dashboard/login", data={"csrf": csrf_of(form.text), "key": key, "next": "/dashboard/tasks"}
    )


def fail(redis_client: redis.Redis, task_id: str, duration_ms: int = 3) -> None:
    """Run the task's attempt to a permanent failure, as a worker would (claim, then finish)."""
    store = RedisTaskStore(redis_client)
    now = int(time.time() * 1000)
    claim = store.claim(task_id, 1, now, now + 60_000)
    assert isinstance(claim, Claim)
    attempt = Attempt(
        n=1, started_at=now, duration_ms=duration_ms, outcome=Outcome.PERMANENT, status_code=410
    )
    result = AttemptResult(Outcome.PERMANENT, error="HTTP 410", status_code=410)
    store.finish(claim.task, attempt, Decision(TaskStatus.FAILED), result, now=now, retention_ms=60_000)
    store.close()


HOOK = {"url": "http://127.0.0.1:9/hook", "headers": {"Authorization": "Bearer s3cr3t-value"}}


def submit(client: TestClient[Any], body: dict[str, Any] | None = None) -> str:
    response = client.post("/api/v1/tasks", json=body or HOOK)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])
