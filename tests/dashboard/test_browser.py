"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright),
against a real API (uvicorn, in this process, with API keys) and a real worker process on the
test Redis. Screenshots of every page at 1280 px and 390 px go to var/artifacts/dashboard/.

Run by `make test-browser` (which installs chromium with apt-get when missing); `make test` skips it.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from queue_system.api.app import create_app
from queue_system.api.keys import KeyRing
from queue_system.config.settings import load_settings
from queue_system.local.mailbox import DevMailbox
from queue_system.testing import free_port, poll
from queue_system.transports.signing import new_secret
from tests.e2e import support
from tests.support.receiver import Receiver, Reply

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "artifacts" / "dashboard"
WRITE_KEY = "browser-write-key-0123456789"
READ_KEY = "browser-read-key-0123456789"
SECRET = new_secret()  # signs the webhooks; the inbox verifies them
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTHS = {"desktop": 1280, "phone": 390}


@dataclass
class Stack:
    base_url: str
    api: httpx.Client
    receiver: Receiver
    redis: redis.Redis


def _serve(app: Any, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    assert poll(lambda: server.started, 30), "the API did not start"
    return server, thread


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    sink = DevMailbox(redis_url)
    smtp_url = sink.start()
    logs = tmp_path_factory.mktemp("browser-logs")
    worker = support.start_worker(
        redis_url, logs, SMTP_URL=smtp_url, EMAIL_DEFAULT_TO="dev@localhost", WEBHOOK_SIGNING_SECRET=SECRET
    )
    settings = load_settings(
        {
            "REDIS_URL": redis_url,
            "EMAIL_DEFAULT_TO": "dev@localhost",
            "SMTP_URL": smtp_url,
            "EGRESS_ALLOW_CIDRS": "127.0.0.0/8",
            "DEV_INBOX": "true",  # as `make run` has it
            "WEBHOOK_SIGNING_SECRET": SECRET,
        }
    )
    ring = KeyRing.from_settings(api_keys=WRITE_KEY, read_keys=READ_KEY)
    port = free_port()
    server, thread = _serve(create_app(settings, keyring=ring), port)
    base_url = f"http://127.0.0.1:{port}"
    try:
        with Receiver(default=410) as receiver, httpx.Client(base_url=base_url, timeout=10) as api:
            yield Stack(base_url, api, receiver, client)
    finally:
        server.should_exit = True
        thread.join(15)
        worker.stop()
        sink.stop()
        client.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: `make test-browser` installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


# Reports every Content-Security-Policy violation of a page to the test (init scripts run before
# the page's own and are not subject to its CSP).
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__qsViolation(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${where}`);
});
"""


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A browser context that fails the test on any CSP violation or console error it saw."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(20_000)
    violations: list[str] = []

    def violation(text: str) -> None:
        violations.append(text)

    ctx.expose_function("__qsViolation", violation)
    ctx.add_init_script(REPORT_VIOLATIONS)
    ctx.on(
        "console",
        lambda message: (
            violations.append(f"console: {message.text}")
            if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text
            else None
        ),
    )
    try:
        yield ctx
    finally:
        ctx.close()
    assert not violations, violations


def sign_in(page: Page, stack: Stack, key: str, path: str = "/dashboard/") -> None:
    page.goto(stack.base_url + path)
    expect(page).to_have_url(re.compile(r"/dashboard/login"))
    page.fill("#key", key)
    page.click("button[type=submit]")
    expect(page.locator("h1").first).not_to_have_text("Sign in")


def submit(stack: Stack, body: dict[str, Any]) -> str:
    response = stack.api.post("/api/v1/tasks", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 600})  # full_page: as tall as the content
        page.wait_for_timeout(300)  # let the layout (and the chart's resize) settle before the picture
        page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_sign_in_watch_a_failure_arrive_and_retry_it(context: BrowserContext, stack: Stack) -> None:
    page = context.new_page()
    sign_in(page, stack, WRITE_KEY, "/dashboard/tasks")
    expect(page.locator(".badge")).to_have_text("read-write")
    task_id = submit(stack, {"url": stack.receiver.url("/hook"), "body": {"order": 42}})
    row = page.locator(f'tr[data-task="{task_id}"]')
    # The list refreshes itself (htmx polling): no reload here.
    expect(row).to_be_visible(timeout=15_000)
    expect(row.locator(".status")).to_have_text("failed", timeout=15_000)
    row.locator("a").click()
    expect(page.locator("[data-attempts]")).to_have_text("1")
    expect(page.locator(".timeline li")).to_have_count(1)
    expect(page.locator(".timeline")).to_contain_text("HTTP 410")
    page.get_by_role("button", name="Retry").click()
    expect(page.locator(".notice")).to_have_text("retry started")
    expect(page.locator("[data-attempts]")).to_have_text("2", timeout=15_000)
    expect(page.locator(".timeline li")).to_have_count(2, timeout=15_000)
    expect(page.locator(".timeline")).to_contain_text("manual")
    # A POST without the CSRF token is refused, even with a valid write session.
    refused = page.request.post(f"{stack.base_url}/dashboard/tasks/{task_id}/retry", form={"x": "1"})
    assert refused.status == 403


def test_a_read_only_key_sees_no_buttons_and_a_forged_post_is_refused(
    context: BrowserContext, stack: Stack
) -> None:
    task_id = submit(stack, {"url": stack.receiver.url("/ro")})
    assert poll(lambda: stack.api.get(f"/api/v1/tasks/{task_id}").json()["status"] == "failed", 15)
    page = context.new_page()
    sign_in(page, stack, READ_KEY, f"/dashboard/tasks/{task_id}")
    expect(page.locator(".badge")).to_have_text("read-only")
    expect(page.locator("[data-status]")).to_have_text("failed")
    expect(page.locator("main button")).to_have_count(0)
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")  # the sign-out form's token
    forged = page.request.post(f"{stack.base_url}/dashboard/tasks/{task_id}/retry", form={"csrf": csrf or ""})
    assert forged.status == 403
    assert stack.api.get(f"/api/v1/tasks/{task_id}").json()["status"] == "failed"


def test_screenshots_of_every_page(context: BrowserContext, stack: Stack) -> None:
    """The pictures a human looks at (README: docs/screenshots/ are picked from these)."""
    with Receiver(default=200) as ok:
        done = [submit(stack, {"url": ok.url(f"/orders/{n}"), "body": {"n": n}}) for n in range(6)]
        assert poll(lambda: stack.api.get(f"/api/v1/tasks/{done[-1]}").json()["status"] == "completed", 15)
    submit(stack, {"type": "email", "payload": "Your report is ready\n\nThe weekly report is attached."})
    busy = Reply(503, body=b'{"error": "upstream busy"}')
    with Receiver(script=[busy], default=Reply(410, body=b'{"error": "order 7 is gone"}')) as flaky:
        hook = {
            "url": flaky.url("/orders/7"),
            "headers": {"Authorization": "Bearer secret"},
            "body": {"id": 7},
        }
        failed = submit(stack, hook)  # a transient failure, retried, then a permanent one
        assert poll(lambda: stack.api.get(f"/api/v1/tasks/{failed}").json()["status"] == "failed", 15)
    submit(stack, {"url": stack.receiver.url("/later"), "delay": "1h"})
    inbox = {"url": f"{stack.base_url}/dev/inbox/demo", "headers": {"X-Custom-Header": "test"}}
    submit(stack, inbox | {"body": {"order": 42, "status": "paid"}})  # delivered into the API's own inbox
    assert poll(lambda: _mails(stack.redis) >= 1, 15)
    assert poll(lambda: stack.api.get("/api/v1/dev/inbox/demo").json()["items"], 15)
    _seed_counters(stack.redis)
    page = context.new_page()
    page.goto(stack.base_url + "/dashboard/login")
    shoot(page, "login")
    page.fill("#key", WRITE_KEY)
    page.click("button[type=submit]")
    expect(page.locator("#chart canvas")).to_be_visible()
    shoot(page, "overview")
    page.goto(stack.base_url + "/dashboard/tasks")
    shoot(page, "tasks")
    page.goto(f"{stack.base_url}/dashboard/tasks/{failed}")
    expect(page.locator(".payload").first).to_contain_text("[redacted]")
    shoot(page, "task")
    page.goto(stack.base_url + "/dashboard/bulk-retry")
    shoot(page, "bulk-retry")
    started = stack.api.post("/api/v1/tasks/actions/cancel", json={"status": ["scheduled"]})
    assert started.status_code == 202, started.text  # the delayed task: a worker's reconciler runs it
    page.goto(stack.base_url + "/dashboard/operations")
    expect(page.locator("table.operations tbody tr").first).to_contain_text("cancel")
    expect(page.locator("table.operations [data-done]").first).to_have_text("1", timeout=15_000)
    shoot(page, "operations")
    page.goto(stack.base_url + "/dashboard/mailbox")
    expect(page.locator(".mails li").first).to_contain_text("Your report is ready")
    shoot(page, "mailbox")
    page.goto(stack.base_url + "/dashboard/inbox")
    expect(page.locator(".mails li").first).to_contain_text('"order":42')
    expect(page.locator(".mails li").first).to_contain_text("verified")
    shoot(page, "inbox")
    page.locator(".mails li details summary").first.click()  # the headers, opened ...
    for _ in range(2):  # ... stay open across htmx's refreshes (hx-preserve)
        with page.expect_response(
            lambda r: r.url.endswith("/dashboard/inbox") and "hx-request" in r.request.headers
        ):
            pass
    expect(page.locator(".mails li details").first).to_have_attribute("open", "")
    expect(page.locator(".mails li table.headers").first).to_contain_text("x-custom-header")
    assert len(list(ARTIFACTS.glob("*.png"))) >= 16


def test_the_pages_run_under_the_csp_and_delete_asks_first(context: BrowserContext, stack: Stack) -> None:
    """Clicking through every page (polling, the chart, the delete confirmation from static/app.js)
    with the dashboard's CSP on: the `context` fixture fails on any violation it saw."""
    task_id = submit(stack, {"url": stack.receiver.url("/csp")})
    assert poll(lambda: stack.api.get(f"/api/v1/tasks/{task_id}").json()["status"] == "failed", 15)
    page = context.new_page()
    response = page.goto(stack.base_url + "/dashboard/login")
    assert response is not None and "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page.fill("#key", WRITE_KEY)
    page.click("button[type=submit]")
    expect(page.locator("#chart canvas")).to_be_visible()  # uPlot ran: scripts from 'self' allowed
    with page.expect_request(
        lambda r: r.url.endswith("/dashboard/") and r.headers.get("hx-request") == "true"
    ):
        pass  # htmx polls the overview (every 3 s)
    for name in ("Tasks", "Schedules", "Mailbox", "Inbox", "Overview", "Tasks"):
        page.get_by_role("link", name=name, exact=True).first.click()
        expect(page.locator("nav a[aria-current]")).to_have_text(name)
    page.locator(f'tr[data-task="{task_id}"] a').click()
    expect(page.locator("[data-status]")).to_have_text("failed")

    asked: list[str] = []

    def answer(dialog: Any) -> None:
        asked.append(dialog.message)
        if len(asked) == 1:
            dialog.dismiss()
        else:
            dialog.accept()

    page.on("dialog", answer)
    page.get_by_role("button", name="Delete").click()
    expect(page.locator("[data-status]")).to_have_text("failed")  # dismissed: still there
    assert asked == [f"Delete task {task_id}?"]
    assert stack.api.get(f"/api/v1/tasks/{task_id}").status_code == 200
    page.get_by_role("button", name="Delete").click()
    expect(page.locator(".notice")).to_have_text(f"task {task_id} deleted")
    assert stack.api.get(f"/api/v1/tasks/{task_id}").status_code == 404


def _mails(client: redis.Redis) -> int:
    count: Any = client.llen("qs:mailbox")
    return int(count)


def _seed_counters(client: redis.Redis) -> None:
    """An hour of per-minute counters, as the worker's FINISH script writes them, for the chart:
    steady traffic with a burst of failures in the middle."""
    last = int(time.time()) // 60
    for i, minute in enumerate(range(last - 59, last + 1)):
        completed = int(50 + 12 * math.sin(i / 6) + 5 * math.sin(i * 1.7))
        failed = int(6 + 4 * math.sin(i)) if 24 <= i <= 34 else int(1 + math.sin(i * 2.3))
        retried = failed // 2 + 1
        key = f"qs:stats:{minute}"
        client.hset(
            key,
            mapping={
                "completed": completed,
                "failed": failed,
                "retried": retried,
                "attempts": completed + failed,
            },
        )
        client.expire(key, 7200)


def test_schedules_pause_toggle_and_a_schedules_tasks(context: BrowserContext, stack: Stack) -> None:
    """The schedules page: next and last runs, the pause/resume toggle, a schedule's last tasks
    linking to the task pages (the worker of `stack` fires them); screenshots of both pages."""
    every = {"id": "heartbeat", "task": {"type": "echo", "payload": "ping"}, "every": "1s"}
    cron = {"id": "nightly-report", "task": {"url": stack.receiver.url("/report")}, "cron": "30 2 * * *"}
    for body in (every, cron | {"timezone": "Europe/Berlin"}):
        assert stack.api.post("/api/v1/schedules", json=body).status_code == 201
    try:

        def fired(n: int) -> bool:
            return len(stack.api.get("/api/v1/schedules/heartbeat").json()["last_tasks"]) >= n

        assert poll(lambda: fired(3), 15)
        page = context.new_page()
        sign_in(page, stack, WRITE_KEY, "/dashboard/schedules")
        row = page.locator('tr[data-schedule="heartbeat"]')
        expect(row.locator("[data-state]")).to_have_text("active")
        expect(page.locator('tr[data-schedule="nightly-report"]')).to_contain_text("Europe/Berlin")
        shoot(page, "schedules")
        row.get_by_role("button", name="Pause").click()
        expect(page.locator(".notice")).to_have_text("schedule heartbeat paused")
        expect(row.locator("[data-state]")).to_have_text("paused")
        row.locator("a").click()
        expect(page.locator("h1 [data-state]")).to_have_text("paused")
        expect(page.locator("tr[data-task]").first).to_be_visible()
        shoot(page, "schedule")
        page.get_by_role("button", name="Resume").click()
        expect(page.locator("h1 [data-state]")).to_have_text("active")
        page.locator("tr[data-task] a").first.click()
        expect(page).to_have_url(re.compile(r"/dashboard/tasks/heartbeat@\d+$"))
        expect(page.locator("[data-status]")).to_have_text("completed", timeout=15_000)
    finally:
        for sid in ("heartbeat", "nightly-report"):
            stack.api.delete(f"/api/v1/schedules/{sid}")
        for task in stack.api.get("/api/v1/tasks", params={"schedule_id": "heartbeat", "limit": 500}).json()[
            "items"
        ]:
            stack.api.delete(f"/api/v1/tasks/{task['id']}")
