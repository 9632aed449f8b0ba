"""Browser protections (api/headers.py) on a real app and Redis: every dashboard GET route (found
in the app's routes, not listed here), signed in or not, page or htmx fragment, and every static
file carries the CSP, `frame-ancestors 'none'`/`X-Frame-Options: DENY`, `nosniff` and a
`Referrer-Policy`; so do the refusals and problems that exception handlers build, and every API
response is `nosniff`. No rendered page has an inline script, an inline event handler, an inline
style or an eval-needing htmx attribute, whatever text a task carries (a Hypothesis property)."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.api.dashboard.auth import SESSION_COOKIE
from queue_system.api.dashboard.web import HERE
from queue_system.api.headers import DASHBOARD_CSP
from queue_system.config.settings import load_settings
from queue_system.domain.models import Attempt, AttemptResult, Outcome, TaskStatus
from queue_system.domain.retry import Decision
from queue_system.storage.types import Claim
from queue_system.storage.worker_store import RedisTaskStore
from tests.support.dashboard import READ_KEY, WRITE_KEY, csrf_of, fail

STATIC = HERE / "static"
HOOK = {"url": "http://127.0.0.1:9/hook", "headers": {"Authorization": "Bearer s3cr3t-value"}}
BROWSER = {
    "content-security-policy": DASHBOARD_CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


@pytest.fixture
def app_client(redis_client: redis.Redis, redis_url: str) -> Iterator[TestClient[Any]]:
    env = {"REDIS_URL": redis_url, "EGRESS_ALLOW_CIDRS": "127.0.0.0/8", "API_KEYS": WRITE_KEY}
    with TestClient(create_app(load_settings(env | {"API_READ_KEYS": READ_KEY}))) as client:
        client.headers["X-API-Key"] = WRITE_KEY
        yield client


def sign_in(client: TestClient[Any]) -> None:
    form = client.get("/dashboard/login")
    signed = client.post(
        "/dashboard/login",
        data={"csrf": csrf_of(form.text), "key": WRITE_KEY, "next": "/dashboard/"},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text


def submit(client: TestClient[Any], body: dict[str, Any]) -> httpx.Response:
    return client.post("/api/v1/tasks", json=body)


def dashboard_urls(client: TestClient[Any], task_ids: list[str]) -> list[str]:
    """Every GET route of the dashboard, as the app has them, with values for their parameters:
    each task id, a schedule (and one that does not exist), each file under static/. A new
    parameter fails here until it gets values."""
    schedule = client.post(
        "/api/v1/schedules",
        json={"task": {"url": "http://127.0.0.1:9/hook", "body": {"a": 1}}, "every": "1h", "paused": True},
    )
    assert schedule.status_code == 201, schedule.text
    values: dict[str, list[str]] = {
        "task_id": task_ids,
        "schedule_id": [schedule.json()["id"], "no-such-schedule"],
        "file_path": [str(p.relative_to(STATIC)) for p in sorted(STATIC.rglob("*")) if p.is_file()],
    }
    urls: list[str] = []
    for route in client.app.routes:
        if not route.path.startswith("/dashboard") or "GET" not in getattr(route, "methods", ()):
            continue
        names = re.findall(r"\{(\w+):\w+\}", route.path)
        missing = [name for name in names if name not in values]
        assert not missing, f"{route.path}: no test values for {missing}"
        for combo in itertools.product(*(values[name] for name in names)):
            url = route.path
            for name, value in zip(names, combo, strict=True):
                url = re.sub(r"\{" + name + r":\w+\}", value, url)
            urls.append(url)
    return urls


def assert_protected(response: httpx.Response, url: str) -> None:
    got = {name: response.headers.get(name) for name in BROWSER}
    assert got == BROWSER, f"{url} ({response.status_code}): {got}"
    assert len(response.headers.get_list("content-security-policy")) == 1, url


class InlineCode(HTMLParser):
    """What a strict CSP would block or what needs `unsafe-eval`: collected as `findings`."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.findings: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        given_attrs = dict(attrs)
        if tag == "script":
            src = given_attrs.get("src")
            if not src:
                self.findings.append("<script> without src")
            else:
                self.scripts.append(src)
            self._in_script = True
        if tag == "style":
            self.findings.append("<style> element")
        for name, value in attrs:
            text = (value or "").strip().lower()
            if name.startswith("on") or name.startswith(("hx-on", "data-hx-on")):
                self.findings.append(f"<{tag} {name}=...>: an inline handler")
            elif name == "style":
                self.findings.append(f"<{tag} style=...>: an inline style")
            elif name in ("hx-vals", "hx-vars", "hx-headers", "data-hx-vals") and text.startswith("js:"):
                self.findings.append(f"<{tag} {name}=js:...>: htmx eval")
            elif name in ("href", "src", "action", "formaction") and text.startswith("javascript:"):
                self.findings.append(f"<{tag} {name}=javascript:...>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.findings.append("inline script text")


def inline_code(html: str) -> InlineCode:
    parser = InlineCode()
    parser.feed(html)
    parser.close()
    return parser


def tasks_of_every_kind(client: TestClient[Any], redis_client: redis.Redis) -> list[str]:
    """A failed task (Retry and Delete), a scheduled one (Cancel), and an id no task has."""
    failed = submit(client, HOOK).json()["id"]
    fail(redis_client, failed)
    scheduled = submit(client, {**HOOK, "delay": "1h"}).json()["id"]
    return [failed, scheduled, "no-such-task"]


def test_every_dashboard_route_and_static_file_carries_the_browser_protections(
    app_client: TestClient[Any], redis_client: redis.Redis
) -> None:
    urls = dashboard_urls(app_client, tasks_of_every_kind(app_client, redis_client))
    assert any("/static/" in url for url in urls) and "/dashboard/login" in urls
    # Signed out: the redirects to the sign-in page and the sign-in page itself.
    for url in urls:
        assert_protected(app_client.get(url, follow_redirects=False), url)
    sign_in(app_client)
    codes: set[int] = set()
    for url in urls:
        for headers in ({}, {"HX-Request": "true"}):
            response = app_client.get(url, headers=headers, follow_redirects=False)
            codes.add(response.status_code)
            assert_protected(response, url)
    assert {200, 404} <= codes  # pages, fragments, files, and the missing task's page


def test_refusals_and_problems_carry_them_and_every_api_response_is_nosniff(
    app_client: TestClient[Any],
) -> None:
    # Built by exception handlers or the router, not by a dashboard handler.
    refused = app_client.post("/dashboard/tasks/x/retry", data={"csrf": "wrong"})
    assert refused.status_code == 403
    assert_protected(refused, "POST /dashboard/tasks/x/retry")
    nothing = app_client.get("/dashboard/no-such-page")
    assert nothing.status_code == 404
    assert_protected(nothing, "/dashboard/no-such-page")
    bad_filter = app_client.get("/dashboard/tasks?status=bogus", headers={"X-API-Key": ""})
    assert_protected(bad_filter, "/dashboard/tasks?status=bogus")

    anonymous = {"X-API-Key": ""}
    api = [
        app_client.get("/health"),
        app_client.get("/api/v1/tasks"),
        app_client.get("/api/v1/tasks", headers=anonymous),  # 401
        app_client.get("/api/v1/tasks/no-such-task"),  # 404 problem
        app_client.post("/api/v1/tasks", json={"type": "webhook"}),  # 422 problem
        app_client.get("/no-such-route"),  # 404 from the router
        app_client.get("/schema/swagger"),
    ]
    assert {r.status_code for r in api} >= {200, 401, 404, 422}
    for response in api:
        where = f"{response.request.url} ({response.status_code})"
        assert response.headers.get("x-content-type-options") == "nosniff", where
        assert response.headers.get("x-frame-options") == "DENY", where
        # Not the dashboard's CSP: Swagger UI under /schema needs its CDN and inline script.
        assert "content-security-policy" not in response.headers, where


def test_no_page_or_fragment_has_inline_script_handlers_or_styles(
    app_client: TestClient[Any], redis_client: redis.Redis
) -> None:
    urls = dashboard_urls(app_client, tasks_of_every_kind(app_client, redis_client))
    sign_in(app_client)
    pages = 0
    for url in urls:
        for headers in ({}, {"HX-Request": "true"}):
            response = app_client.get(url, headers=headers)
            if not response.headers.get("content-type", "").startswith("text/html"):
                continue
            pages += 1
            found = inline_code(response.text)
            assert not found.findings, f"{url} {headers}: {found.findings}"
            assert all(src.startswith("/dashboard/static/") for src in found.scripts), found.scripts
    assert pages >= 12
    # The delete confirmation moved to static/app.js: the form asks through a data attribute.
    failed = urls_of_task(urls)[0]
    assert re.search(r'<form [^>]*data-confirm="Delete task [^"]+\?"', app_client.get(failed).text)


def urls_of_task(urls: list[str]) -> list[str]:
    return [u for u in urls if re.fullmatch(r"/dashboard/tasks/[^/]+", u) and "no-such" not in u]


def test_no_template_has_an_inline_handler_in_its_source() -> None:
    """The templates' source, branches the rendered pages above may not reach included."""
    for template in sorted((HERE / "templates").glob("*.html")):
        source = re.sub(r"\{#.*?#\}", "", template.read_text(), flags=re.S)  # not its comments
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", source), template.name
        assert not re.search(r"\s(on[a-z]+|hx-on[:\w-]*|style)\s*=", source), template.name
        assert "<style" not in source and "javascript:" not in source, template.name


# Text a hostile caller or receiver controls ends up in the task page: the webhook's body and
# headers (the payload), the error and the receiver's response body (the attempt history).
HOSTILE = st.sampled_from(
    [
        "<script>alert(1)</script>",
        '"><img src=x onerror=alert(1)>',
        "' onmouseover='alert(1)",
        "</pre><style>*{}</style>",
        'hx-on:click="alert(1)"',
        "javascript:alert(1)",
        "{{ 7*7 }}",
    ]
)
TEXT = st.lists(st.one_of(HOSTILE, st.text(st.characters(codec="utf-8"), max_size=40)), max_size=4).map(
    "".join
)
ID_ALPHABET = "ABCXYZabcxyz0189._:-"
_serial = itertools.count(1)


def _fail_with(redis_client: redis.Redis, task_id: str, error: str, body: str) -> None:
    store = RedisTaskStore(redis_client)
    now = int(time.time() * 1000)
    claim = store.claim(task_id, 1, now, now + 60_000)
    assert isinstance(claim, Claim)
    attempt = Attempt(
        n=1, started_at=now, duration_ms=3, outcome=Outcome.PERMANENT, error=error, response_body=body
    )
    result = AttemptResult(Outcome.PERMANENT, error=error, status_code=410, response_body=body)
    store.finish(claim.task, attempt, Decision(TaskStatus.FAILED), result, now=now, retention_ms=60_000)
    store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    suffix=st.text(ID_ALPHABET, min_size=1, max_size=24),
    body=TEXT,
    header=TEXT,
    error=TEXT,
    response_body=TEXT,
)
def test_no_text_a_task_carries_turns_into_script_on_its_pages(
    app_client: TestClient[Any],
    redis_client: redis.Redis,
    suffix: str,
    body: str,
    header: str,
    error: str,
    response_body: str,
) -> None:
    # A prefix of its own per example: no id here can be another one's key (issue 17, point 1).
    task_id = f"h{next(_serial):05d}-{suffix}"
    hook = {"id": task_id, "url": HOOK["url"], "body": body, "headers": {"X-Note": header}}
    created = submit(app_client, hook)
    assume(created.status_code == 201)  # the submit's own rules refuse some values: fine
    _fail_with(redis_client, task_id, error, response_body)
    if SESSION_COOKIE not in app_client.cookies:
        sign_in(app_client)
    for url in (f"/dashboard/tasks/{task_id}", "/dashboard/tasks?status=failed"):
        for headers in ({}, {"HX-Request": "true"}):
            page = app_client.get(url, headers=headers)
            assert page.status_code in (200, 286), (url, page.text[:300])  # 286: stop polling
            found = inline_code(page.text)
            assert not found.findings, (url, found.findings)
            assert all(src.startswith("/dashboard/static/") for src in found.scripts), found.scripts
