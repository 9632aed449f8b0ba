"""The dashboard in-process (Litestar's TestClient) on a real Redis: sign-in, sessions, CSRF,
read-only refusal, bulk retry counts, the overview's sources. No browser (see test_browser.py)."""

from __future__ import annotations

import re
import time
from typing import Any

import redis
from litestar.testing import TestClient

from queue_system.api.dashboard.auth import SESSION_COOKIE, SESSION_TTL_S
from queue_system.config.settings import load_settings
from queue_system.service.operations import operation_runner
from queue_system.storage.keys import Keys
from queue_system.testing import poll
from tests.support.dashboard import HOOK, READ_KEY, WRITE_KEY, csrf_of, fail, sign_in, submit


def test_open_mode_says_so_on_every_page(open_client: TestClient[Any]) -> None:
    task_id = submit(open_client)
    for path in ("/dashboard/", "/dashboard/tasks", f"/dashboard/tasks/{task_id}", "/dashboard/mailbox"):
        page = open_client.get(path)
        assert page.status_code == 200, path
        assert "Authentication is off" in page.text, path


def test_an_attempt_shows_its_duration_in_words(
    open_client: TestClient[Any], redis_client: redis.Redis
) -> None:
    short, long = submit(open_client), submit(open_client)
    fail(redis_client, short, duration_ms=3)
    fail(redis_client, long, duration_ms=30_012)
    assert "3 ms" in open_client.get(f"/dashboard/tasks/{short}").text
    page = open_client.get(f"/dashboard/tasks/{long}").text
    assert "30 s" in page and "30012" not in page


def test_a_post_without_the_csrf_token_is_refused(open_client: TestClient[Any]) -> None:
    task_id = submit(open_client)
    page = open_client.get(f"/dashboard/tasks/{task_id}")
    for data in ({}, {"csrf": "forged"}):
        refused = open_client.post(f"/dashboard/tasks/{task_id}/cancel", data=data, follow_redirects=False)
        assert refused.status_code == 403
    assert open_client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "pending"
    done = open_client.post(
        f"/dashboard/tasks/{task_id}/cancel", data={"csrf": csrf_of(page.text)}, follow_redirects=False
    )
    assert done.status_code == 303
    assert open_client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "cancelled"


def test_pages_need_a_session_and_a_wrong_key_is_refused(keyed: TestClient[Any]) -> None:
    page = keyed.get("/dashboard/tasks?status=failed", follow_redirects=False)
    assert page.status_code in (302, 303)
    assert page.headers["location"].startswith("/dashboard/login?next=")
    assert sign_in(keyed, "not-a-key-at-all-000000").status_code == 401
    assert keyed.get("/dashboard/", follow_redirects=False).status_code in (302, 303)
    # A made-up cookie (unsigned, or signed wrongly) is no session either.
    keyed.cookies.set(SESSION_COOKIE, "abc.def", path="/dashboard")
    assert keyed.get("/dashboard/", follow_redirects=False).status_code in (302, 303)


def test_sign_in_creates_a_server_side_session(keyed: TestClient[Any], redis_client: redis.Redis) -> None:
    signed = sign_in(keyed, WRITE_KEY)
    assert signed.status_code == 200 and "Authentication is off" not in signed.text
    assert str(signed.url).endswith("/dashboard/tasks")
    cookie = next(h for h in signed.history[0].headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    (key,) = redis_client.keys("qs:session:*")  # type: ignore[misc]
    assert redis_client.hget(key, "role") == "write"
    assert 0 < int(redis_client.ttl(key)) <= SESSION_TTL_S  # type: ignore[arg-type]
    assert WRITE_KEY not in str(redis_client.hgetall(key))
    # Sign-out deletes the session.
    keyed.post("/dashboard/logout", data={"csrf": csrf_of(signed.text)})
    assert redis_client.keys("qs:session:*") == []
    assert keyed.get("/dashboard/", follow_redirects=False).status_code in (302, 303)


def test_a_read_only_key_sees_no_buttons_and_cannot_post(
    keyed: TestClient[Any], redis_client: redis.Redis
) -> None:
    task_id = submit(keyed)
    fail(redis_client, task_id)
    assert sign_in(keyed, READ_KEY).status_code == 200
    page = keyed.get(f"/dashboard/tasks/{task_id}")
    assert "read-only" in page.text
    assert "/retry" not in page.text and "/delete" not in page.text
    assert "Retry failed" not in keyed.get("/dashboard/tasks").text
    forged = keyed.post(f"/dashboard/tasks/{task_id}/retry", data={"csrf": csrf_of(page.text)})
    assert forged.status_code == 403
    bulk = keyed.post("/dashboard/bulk-retry", data={"csrf": csrf_of(page.text)})
    assert bulk.status_code == 403
    assert keyed.get(f"/api/v1/tasks/{task_id}").json()["status"] == "failed"


def test_the_task_page_redacts_secrets_and_shows_the_attempts(
    open_client: TestClient[Any], redis_client: redis.Redis
) -> None:
    task_id = submit(open_client)
    fail(redis_client, task_id)
    page = open_client.get(f"/dashboard/tasks/{task_id}").text
    assert "s3cr3t-value" not in page and "[redacted]" in page
    assert "permanent" in page and "HTTP 410" in page
    retried = open_client.post(f"/dashboard/tasks/{task_id}/retry", data={"csrf": csrf_of(page)})
    assert retried.status_code == 200 and "retry started" in retried.text
    assert open_client.get(f"/api/v1/tasks/{task_id}").json()["status"] == "pending"


def test_bulk_retry_confirms_the_count_and_retries_only_matching_failed_tasks(
    open_client: TestClient[Any], redis_client: redis.Redis
) -> None:
    failed = [submit(open_client) for _ in range(3)]
    other_queue = submit(open_client, {**HOOK, "queue": "priority"})
    for task_id in [*failed, other_queue]:
        fail(redis_client, task_id)
    pending = submit(open_client)
    confirm = open_client.get("/dashboard/bulk-retry?queue=default&status=pending")
    assert re.search(r"data-count>3<", confirm.text), confirm.text
    done = open_client.post("/dashboard/bulk-retry", data={"csrf": csrf_of(confirm.text), "queue": "default"})
    # The operations page (the filter's index range held 4 failed tasks: 3 of them match).
    assert "bulk retry started: 4 failed tasks" in done.text and "<progress" in done.text
    # The operation runs in the workers' reconcilers: here, its hook, as a worker runs it.
    run = operation_runner(redis_client, Keys(), load_settings({}), "w1")
    assert poll(lambda: run(time.time_ns() // 1_000_000 + 1_000) == 0 and not redis_client.zcard(
        Keys().ops_running), timeout=10)  # fmt: skip
    fragment = open_client.get("/dashboard/operations", headers={"HX-Request": "true"})
    assert 'data-progress="100"' in fragment.text and "<html" not in fragment.text
    statuses = {t: open_client.get(f"/api/v1/tasks/{t}").json()["status"] for t in [*failed, other_queue]}
    assert statuses == {**dict.fromkeys(failed, "pending"), other_queue: "failed"}
    assert open_client.get(f"/api/v1/tasks/{pending}").json()["status"] == "pending"


def test_the_task_list_keeps_its_filters_in_the_url_and_refreshes_as_a_fragment(
    open_client: TestClient[Any],
) -> None:
    hook = submit(open_client)
    page = open_client.get("/dashboard/tasks?status=pending&type=webhook&queue=default")
    assert hook in page.text
    assert 'hx-get="/dashboard/tasks?status=pending&amp;type=webhook&amp;queue=default"' in page.text
    fragment = open_client.get("/dashboard/tasks?status=failed", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and hook not in fragment.text
    assert open_client.get("/dashboard/tasks?status=nonsense").status_code == 400
    assert open_client.get("/dashboard/tasks?created_after=yesterday").status_code == 400


def test_the_overview_reads_counters_workers_and_destinations(
    open_client: TestClient[Any], redis_client: redis.Redis
) -> None:
    empty = open_client.get("/dashboard/").text
    assert "No worker has reported a heartbeat" in empty and "No destinations reported" in empty
    minute = int(time.time() * 1000) // 60_000
    redis_client.hset(f"qs:stats:{minute}", mapping={"completed": 7, "failed": 3, "retried": 2})
    redis_client.zadd("qs:dramatiq:__heartbeats__", {"broker-abc": int(time.time() * 1000) - 2_000})
    redis_client.zadd("qs:dests", {"http://127.0.0.1:9": 1})
    redis_client.hset("qs:dest:http://127.0.0.1:9", mapping={"state": "open", "failures": 5})
    endpoint = "http://127.0.0.1:9/customer-7"
    redis_client.zadd("qs:endpoints", {endpoint: 1})
    error = "HTTP 503 from http://u:hunter2@127.0.0.1:9/x?token=abc"
    redis_client.hset(
        f"qs:endpoint:{endpoint}", mapping={"state": "half_open", "failures": 2, "last_error": error}
    )
    redis_client.zadd(f"qs:ep-parked:{endpoint}", {"t1": 1, "t2": 2})
    page = open_client.get("/dashboard/", headers={"HX-Request": "true"}).text
    assert "30.0 %" in page and "1 alive" in page
    assert "http://127.0.0.1:9" in page and "breaker open" in page
    # Both levels, the endpoint's last error redacted.
    assert endpoint in page and "breaker half_open" in page and "endpoint" in page
    assert "HTTP 503" in page and "hunter2" not in page and "token=abc" not in page
    series = open_client.get("/dashboard/series.json").json()
    assert len(series["minute"]) == 60 and series["completed"][-1] == 7 and series["failed"][-1] == 3
    assert series["attempts"][-1] == 12 and series["attempts"][0] == 0  # completed + failed + retried


def test_sign_in_only_redirects_inside_the_dashboard(keyed: TestClient[Any]) -> None:
    form = keyed.get("/dashboard/login")
    response = keyed.post(
        "/dashboard/login",
        data={"csrf": csrf_of(form.text), "key": WRITE_KEY, "next": "https://evil.test/"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/"


def test_an_expired_session_sends_an_htmx_refresh_to_sign_in(keyed: TestClient[Any]) -> None:
    fragment = keyed.get(
        "/dashboard/tasks?status=failed", headers={"HX-Request": "true"}, follow_redirects=False
    )
    assert fragment.status_code == 200 and fragment.text == ""
    assert fragment.headers["HX-Redirect"] == "/dashboard/login?next=%2Fdashboard%2Ftasks%3Fstatus%3Dfailed"


def test_the_session_cookie_is_secure_behind_https(keyed: TestClient[Any]) -> None:
    form = keyed.get("/dashboard/login")
    signed = keyed.post(
        "/dashboard/login",
        data={"csrf": csrf_of(form.text), "key": WRITE_KEY},
        headers={"X-Forwarded-Proto": "https"},
        follow_redirects=False,
    )
    assert signed.status_code == 303
    assert "secure" in signed.headers["set-cookie"].lower()


def test_delete_removes_the_task_and_returns_to_the_list(open_client: TestClient[Any]) -> None:
    task_id = submit(open_client)
    page = open_client.get(f"/dashboard/tasks/{task_id}")
    done = open_client.post(f"/dashboard/tasks/{task_id}/delete", data={"csrf": csrf_of(page.text)})
    assert done.status_code == 200 and f"task {task_id} deleted" in done.text
    assert open_client.get(f"/api/v1/tasks/{task_id}").status_code == 404
    assert open_client.get(f"/dashboard/tasks/{task_id}").status_code == 404
