"""The dashboard's schedules pages in-process (Litestar's TestClient) on a real Redis: the list with
next and last runs, the pause/resume toggle (CSRF, read-only keys refused), a schedule's page with
its last tasks linking to the task pages, and the htmx fragments."""

from __future__ import annotations

import re
from typing import Any

import redis
from litestar.testing import TestClient

from queue_system.service.schedules import fire_due
from queue_system.storage.keys import Keys
from queue_system.storage.schedules import ScheduleStore
from tests.support.dashboard import READ_KEY, WRITE_KEY, csrf_of, sign_in

ECHO = {"type": "echo", "payload": "tick"}
SECRET_HOOK = {"url": "http://127.0.0.1:9/hook", "headers": {"Authorization": "Bearer s3cr3t-value"}}


def create(client: TestClient[Any], sid: str, **body: Any) -> dict[str, Any]:
    answer = client.post("/api/v1/schedules", json={"id": sid, "task": ECHO, "every": "1m", **body})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_the_list_shows_next_and_last_runs_and_toggles_pause(
    open_client: TestClient[Any], redis_client: redis.Redis
) -> None:
    create(open_client, "minutely")
    create(open_client, "nightly", every=None, cron="30 2 * * *", timezone="Europe/Berlin")
    store = ScheduleStore(redis_client, Keys())
    rec = store.read("minutely")
    assert rec is not None
    assert fire_due(store, rec.next_run_at + 50) == 1
    page = open_client.get("/dashboard/schedules")
    assert page.status_code == 200
    assert 'href="/dashboard/schedules" aria-current="page"' in page.text
    row = re.search(r'<tr data-schedule="minutely">(.*?)</tr>', page.text, re.S)
    assert row is not None
    assert "every 1m" in row.group(1) and "never" not in row.group(1) and "active" in row.group(1)
    assert "cron 30 2 * * *" in page.text and "Europe/Berlin" in page.text

    paused = open_client.post(
        "/dashboard/schedules/minutely/pause",
        data={"csrf": csrf_of(page.text), "from": "list"},
        follow_redirects=False,
    )
    assert paused.status_code == 303 and paused.headers["location"].startswith("/dashboard/schedules?")
    assert open_client.get("/api/v1/schedules/minutely").json()["paused"] is True
    fragment = open_client.get("/dashboard/schedules", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text
    row = re.search(r'<tr data-schedule="minutely">(.*?)</tr>', fragment.text, re.S)
    assert row is not None and "paused" in row.group(1) and "/minutely/resume" in row.group(1)
    resumed = open_client.post(
        "/dashboard/schedules/minutely/resume", data={"csrf": csrf_of(page.text)}, follow_redirects=False
    )
    assert resumed.headers["location"].startswith("/dashboard/schedules/minutely?")
    assert open_client.get("/api/v1/schedules/minutely").json()["paused"] is False
    unknown = open_client.post("/dashboard/schedules/minutely/explode", data={"csrf": csrf_of(page.text)})
    assert unknown.status_code == 404 and unknown.json()["field"] == "action"
    gone = open_client.post("/dashboard/schedules/nope/pause", data={"csrf": csrf_of(page.text)})
    assert gone.status_code == 200 and "schedule nope is gone" in gone.text  # after the redirect


def test_a_schedule_page_lists_its_last_tasks_and_redacts_its_task(
    open_client: TestClient[Any], redis_client: redis.Redis
) -> None:
    create(open_client, "hook", task=SECRET_HOOK)
    store = ScheduleStore(redis_client, Keys())
    rec = store.read("hook")
    assert rec is not None
    assert fire_due(store, rec.next_run_at + 50) == 1
    page = open_client.get("/dashboard/schedules/hook")
    assert page.status_code == 200
    assert f'href="/dashboard/tasks/hook@{rec.next_run_at}"' in page.text
    task_page = open_client.get(f"/dashboard/tasks/hook@{rec.next_run_at}")
    assert 'href="/dashboard/schedules/hook"' in task_page.text  # the task names its schedule
    assert "s3cr3t-value" not in page.text
    assert "every 1m" in page.text and "latest" in page.text
    assert re.search(r"<dd data-overlap>allow</dd>", page.text)
    assert "<html" not in open_client.get("/dashboard/schedules/hook", headers={"HX-Request": "true"}).text
    deleted = open_client.post(
        "/dashboard/schedules/hook/delete", data={"csrf": csrf_of(page.text)}, follow_redirects=False
    )
    assert deleted.status_code == 303
    assert open_client.get("/dashboard/schedules/hook").status_code == 404
    # Its task stays, and its page still opens, naming the schedule that created it.
    task_page = open_client.get(f"/dashboard/tasks/hook@{rec.next_run_at}")
    assert task_page.status_code == 200 and 'href="/dashboard/schedules/hook"' in task_page.text


def test_toggling_needs_the_csrf_token_and_a_write_key(keyed: TestClient[Any]) -> None:
    create_with_key = keyed.post(
        "/api/v1/schedules",
        json={"id": "s", "task": ECHO, "every": "1m"},
        headers={"Authorization": f"Bearer {WRITE_KEY}"},
    )
    assert create_with_key.status_code == 201, create_with_key.text
    assert sign_in(keyed, READ_KEY).status_code == 200
    page = keyed.get("/dashboard/schedules")
    assert "every 1m" in page.text and "/s/pause" not in page.text  # no button for a read-only key
    assert keyed.post("/dashboard/schedules/s/pause", data={"csrf": csrf_of(page.text)}).status_code == 403
    assert keyed.post("/dashboard/schedules/s/pause", data={"csrf": "forged"}).status_code == 403
    assert keyed.get("/dashboard/schedules/s").status_code == 200


def test_pages_need_a_session(keyed: TestClient[Any]) -> None:
    answer = keyed.get("/dashboard/schedules", follow_redirects=False)
    assert answer.status_code in (302, 303, 307) and "/dashboard/login" in answer.headers["location"]


def test_a_skip_schedule_page_shows_its_skipped_ticks(
    open_client: TestClient[Any], redis_client: redis.Redis
) -> None:
    create(open_client, "skipper", overlap="skip")
    store = ScheduleStore(redis_client, Keys())
    rec = store.read("skipper")
    assert rec is not None
    assert fire_due(store, rec.next_run_at + 50) == 1
    assert fire_due(store, rec.next_run_at + 60_050) == 0
    page = open_client.get("/dashboard/schedules/skipper").text
    assert re.search(r"<dd data-overlap>skip <span[^>]*>\(ticks skipped: 1\)</span></dd>", page)
