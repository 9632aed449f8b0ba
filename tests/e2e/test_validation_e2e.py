"""Validation end to end, with real processes: the running API refuses what cannot be sent, and a
task stored before that rule (written here through an unchecked API on the same Redis) fails in the
real worker's aiohttp loop after one attempt, permanently, without opening its destination's
breaker (which opens after 1 failure in this module), so the next healthy webhook goes out."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.config.settings import load_settings
from queue_system.kinds import Registry
from queue_system.kinds.webhook import webhook_kind
from tests.e2e import support
from tests.e2e.support import outcomes, submit, wait_for_status
from tests.support.receiver import Receiver

pytestmark = pytest.mark.e2e

ENV = {"WEBHOOK_BREAKER_THRESHOLD": "1"}


@pytest.fixture(scope="module")
def services(redis_url: str, e2e_logs: Path) -> Iterator[support.Stack]:
    with support.stack(redis_url, e2e_logs, **ENV) as running:
        yield running


def destination(api: httpx.Client, port: int, path: str = "") -> dict[str, Any]:
    """The host's row (or, with a `path`, that endpoint's)."""
    body = api.get("/api/v1/destinations").json()
    rows: dict[str, dict[str, Any]] = {r["destination"]: r for r in body["items"] + body["endpoints"]}
    return rows.get(f"http://127.0.0.1:{port}{path}", {"state": "closed", "failures": 0})


@pytest.mark.parametrize(
    "hook",
    [
        {"url": "http://127.0.0.1:9/h", "headers": {"X-Inj\n": "v"}},
        {"url": "http://127.0.0.1:9/h", "id": "abc\n"},
        {"url": "http://127.0.0.1:0/h"},
        {"url": "http://user:pass@127.0.0.1:9/h"},
    ],
)
def test_the_running_api_refuses_what_cannot_be_sent(api: httpx.Client, hook: dict[str, Any]) -> None:
    response = api.post("/api/v1/tasks", json=hook)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_an_undecodable_body_is_a_400_from_the_running_api(api: httpx.Client) -> None:
    response = api.post(
        "/api/v1/tasks", content=b'{"url": "\xff"}', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "body"


def test_a_stored_unsendable_task_fails_once_and_leaves_the_breaker_closed(
    api: httpx.Client, receiver: Receiver, redis_url: str
) -> None:
    settings = load_settings({"REDIS_URL": redis_url, "EGRESS_ALLOW_CIDRS": "127.0.0.0/8"})
    unchecked = Registry([dataclasses.replace(webhook_kind(settings), check=None)])
    with TestClient(create_app(settings, registry=unchecked)) as old_api:
        for i, headers in enumerate([{"X-Inj\n": "v"}, {"X-Ctl": "a\x01b"}, {"X-Utf": "café"}]):
            hook = {"url": receiver.url("/hook"), "headers": headers, "id": f"old-{i}"}
            assert old_api.post("/api/v1/tasks", json=hook).status_code == 201
    for i in range(3):
        task = wait_for_status(api, f"old-{i}", "failed", timeout=15)
        assert task["attempts"] == 1 and outcomes(task) == ["permanent"], task
        assert task["attempt_history"][0]["error"].startswith("unsendable request"), task
    assert receiver.count == 0
    for path in ("", "/hook"):  # neither the host's breaker nor the endpoint's counted them
        row = destination(api, receiver.port, path)
        assert row["state"] == "closed" and row["failures"] == 0, row
    healthy = submit(api, {"url": receiver.url("/hook")})
    wait_for_status(api, healthy, "completed", timeout=15)
    assert receiver.count == 1
