"""The overview's Queues card in-process on a real Redis: depth, paused and oldest age, the
pause/resume button (CSRF-checked form POST), no button for a read-only key."""

from __future__ import annotations

import re
from typing import Any

import redis
from litestar.testing import TestClient

from queue_system.api.keys import KeyRing
from tests.support.dashboard import READ_KEY, WRITE_KEY, csrf_of, make_client, sign_in, submit


def _row(html: str, queue: str) -> str:
    match = re.search(rf'<tr data-queue="{queue}">(.*?)</tr>', html, re.S)
    assert match, html
    return match.group(1)


def test_pause_and_resume_from_the_overview(open_client: TestClient[Any]) -> None:
    page = open_client.get("/dashboard/").text
    assert "running" in _row(page, "default") and ">Pause<" in _row(page, "default")
    submit(open_client, {"type": "echo", "payload": "x"})
    for data in ({}, {"csrf": "forged"}):
        r = open_client.post("/dashboard/queues/default/pause", data=data)
        assert r.status_code == 403, r.text
    done = open_client.post(
        "/dashboard/queues/default/pause", data={"csrf": csrf_of(page)}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"] == "/dashboard/"
    row = _row(open_client.get("/dashboard/", headers={"HX-Request": "true"}).text, "default")
    assert "paused" in row and ">Resume<" in row and '<td class="num">1</td>' in row
    assert open_client.get("/api/v1/queues/default").json()["paused"] is True
    open_client.post("/dashboard/queues/default/resume", data={"csrf": csrf_of(page)})
    assert open_client.get("/api/v1/queues/default").json()["paused"] is False
    bad = open_client.post("/dashboard/queues/nope/pause", data={"csrf": csrf_of(page)})
    assert bad.status_code == 404


def test_a_read_only_key_sees_the_state_but_no_button(redis_client: redis.Redis, redis_url: str) -> None:
    ring = KeyRing.from_settings(api_keys=WRITE_KEY, read_keys=READ_KEY)
    with make_client(redis_url, ring) as client:
        sign_in(client, READ_KEY)
        page = client.get("/dashboard/").text
        assert "running" in _row(page, "default") and "<form" not in _row(page, "default")
        refused = client.post("/dashboard/queues/default/pause", data={"csrf": csrf_of(page)})
        assert refused.status_code == 403
