"""Batch submit end to end: the API and worker processes, Redis, and a real HTTP receiver. Every
created item of one batch is delivered once; the refused items never are."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.support import wait_for_status
from tests.support.receiver import Receiver

pytestmark = pytest.mark.e2e


def test_a_batchs_webhooks_are_each_delivered_once(api: httpx.Client, receiver: Receiver) -> None:
    good = [
        {"url": receiver.url(f"/batch/{i}"), "method": "POST", "body": {"n": i}, "id": f"e2e-{i}"}
        for i in range(20)
    ]
    bad = {"url": "ftp://127.0.0.1/nope"}
    tasks = [*good[:10], bad, *good[10:], good[3]]  # a refused item and a repeat in the middle

    response = api.post("/api/v1/tasks/batch", json={"tasks": tasks})

    assert response.status_code == 200, response.text  # not every item was created
    items = response.json()["items"]
    assert [i["status"] for i in items] == [201] * 10 + [422] + [201] * 10 + [200]
    assert items[10]["problem"]["field"] == "tasks[10].url"
    for i in range(20):
        task = wait_for_status(api, f"e2e-{i}", "completed")
        assert task["attempts"] == 1, task["attempt_history"]
    assert receiver.wait_for(20, timeout=10)
    assert not receiver.wait_for(21, timeout=1)  # the repeat and the refused item sent nothing
    paths = sorted(r.path for r in receiver.requests)
    assert paths == sorted(f"/batch/{i}" for i in range(20))
    by_path = {r.path: r.body for r in receiver.requests}
    assert by_path["/batch/7"] == b'{"n":7}'
