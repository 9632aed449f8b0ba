"""Every reader goes through the one redaction rule: a property over the whole input space, checked
on the real app (real Redis) in GET, the list, the old-system aliases and the dashboard's HTML, with a
read-only key. The worker would still send every value as given (the stored payload keeps them)."""

from __future__ import annotations

import json
import string
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.config.settings import load_settings
from queue_system.domain.redaction import REDACTED, header_problems
from queue_system.storage.types import Claim
from queue_system.storage.worker_store import RedisTaskStore
from tests.support.dashboard import sign_in
from tests.support.receiver import Receiver, Reply
from tests.support.redaction import credential_values, secret_names, secret_params, secrets_
from tests.support.webhooks import StubDNS, run_task

WRITE = "write-key-0123456789abcdef"
READ = "read-key-0123456789abcdef"


@pytest.fixture
def apps(redis_client: redis.Redis, redis_url: str) -> Iterator[tuple[TestClient[Any], TestClient[Any]]]:
    settings = load_settings(
        {
            "REDIS_URL": redis_url,
            "API_KEYS": WRITE,
            "API_READ_KEYS": READ,
            "EGRESS_ALLOW_CIDRS": "127.0.0.0/8",
        }
    )
    with TestClient(create_app(settings)) as writer, TestClient(create_app(settings)) as reader:
        writer.headers["Authorization"] = f"Bearer {WRITE}"
        reader.headers["Authorization"] = f"Bearer {READ}"
        sign_in(reader, READ)  # the dashboard session, as a read-only viewer
        assert reader.cookies.get("qs_dashboard")
        yield writer, reader


def every_reader(reader: TestClient[Any], task_id: str) -> dict[str, str]:
    pages = {
        "GET": reader.get(f"/api/v1/tasks/{task_id}"),
        "list": reader.get("/api/v1/tasks", params={"limit": 500}),
        "job alias": reader.get(f"/job/{task_id}"),
        "jobs alias": reader.get("/jobs"),
        "dashboard task": reader.get(f"/dashboard/tasks/{task_id}"),
        "dashboard list": reader.get("/dashboard/tasks"),
    }
    for name, page in pages.items():
        assert page.status_code == 200, (name, page.text)
    return {name: page.text for name, page in pages.items()}


@settings(
    max_examples=40,
    deadline=None,
    # One app and one Redis for every example, on purpose: each example's task has its own id.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    name=secret_names,
    secret=secrets_,
    credential=credential_values,
    param=secret_params,
    plain=st.text(string.ascii_letters, min_size=6, max_size=12).map(lambda s: "plain" + s),
)
def test_no_reader_shows_a_secret(
    apps: tuple[TestClient[Any], TestClient[Any]],
    redis_client: redis.Redis,
    name: str,
    secret: str,
    credential: str,
    param: str,
    plain: str,
) -> None:
    writer, reader = apps
    headers = {name: secret, "X-Looks-Ordinary": credential, "X-Plain": plain}
    if header_problems(headers):  # a name the submit refuses (Proxy-*, webhook-signature): not stored
        return
    url = f"http://127.0.0.1:9/hook?{param}={secret}&page=2"
    created = writer.post("/api/v1/tasks", json={"url": url, "headers": headers})
    assert created.status_code == 201, created.text
    assert secret not in created.text and credential not in created.text
    task_id = created.json()["id"]
    now = int(time.time() * 1000)
    claim = RedisTaskStore(redis_client).claim(task_id, 1, now, now + 60_000)  # as a worker would
    assert isinstance(claim, Claim) and claim.task.payload["headers"][name] == secret  # it sends it
    assert claim.task.payload["url"] == url
    for reader_name, text in every_reader(reader, task_id).items():
        assert secret not in text, reader_name
        assert credential not in text and json.dumps(credential)[1:-1] not in text, reader_name
    shown = reader.get(f"/api/v1/tasks/{task_id}").json()["payload"]
    assert shown["headers"] == {name: REDACTED, "X-Looks-Ordinary": REDACTED, "X-Plain": plain}
    assert shown["url"] == f"http://127.0.0.1:9/hook?{param}={REDACTED}&page=2"
    assert plain in reader.get(f"/dashboard/tasks/{task_id}").text  # the rest is still shown


@pytest.mark.parametrize("status", [200, 401])
def test_a_receiver_echoing_the_request_shows_no_secret_to_any_reader(
    apps: tuple[TestClient[Any], TestClient[Any]], redis_client: redis.Redis, redis_url: str, status: int
) -> None:
    # Request bins, httpbin and many error pages ("invalid token ...") echo what they were sent;
    # the first 1 KB of the answer is kept in the attempt, so the task's secrets came back to
    # every reader there (found by hand: only the payload and the errors were redacted).
    writer, reader = apps
    token, bearer, sig, password = "Zq9tokenvalue1", "Zq9bearervalue2", "Zq9sigvalue3", "Zq9pw4"
    headers = {"X-Auth-Token": token, "X-Forward": f"Bearer {bearer}"}
    echo = json.dumps({"headers": {**headers, "Authorization": f"Basic {password}"}, "args": {"sig": sig}})
    answer = f"invalid token {token}; you sent {echo}".encode()
    with Receiver(default=Reply(status=status, body=answer)) as rx:
        url = f"{rx.url('/hook')}?sig={sig}&page=2"
        body = {"url": url, "headers": {**headers, "Authorization": f"Basic {password}"}, "id": "echo-1"}
        assert writer.post("/api/v1/tasks", json=body).status_code == 201
        run_task(redis_client, load_settings({"EGRESS_ALLOW_CIDRS": "127.0.0.0/8"}), "echo-1", StubDNS({}))
        assert rx.wait_for(1, timeout=10)
    task = reader.get("/api/v1/tasks/echo-1").json()
    assert task["attempts"] == 1 and "you sent" in task["attempt_history"][0]["response_body"]
    for reader_name, text in every_reader(reader, "echo-1").items():
        for secret in (token, bearer, sig, password):
            assert secret not in text, (reader_name, secret)
