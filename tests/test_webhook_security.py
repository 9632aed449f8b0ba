"""The webhook kind's security, through the real app and the real runner on a real Redis:
blocked literals refused at submit, hostile headers refused, secrets redacted, and names resolving
to a blocked address (a stub resolver answers what the test says) failing the attempt permanently,
redirect hops included."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any, cast

import msgspec
import pytest
import redis
from litestar.testing import TestClient
from standardwebhooks.webhooks import Webhook as Verifier

from queue_system.api.app import create_app
from queue_system.config.settings import load_settings
from queue_system.local.launcher import child_env
from queue_system.transports.http import response_text
from queue_system.transports.signing import new_secret
from tests.support.api import assert_problem
from tests.support.receiver import Receiver, Reply
from tests.support.webhooks import StubDNS, run_task

BLOCKED_LITERALS = [
    "http://127.0.0.1/",
    "http://127.1.2.3:8080/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://198.18.0.1/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://[::1]:80/",
    "http://[::]/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://[fe80::1]/",
    "http://[ff02::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::127.0.0.1]/",
    "http://[64:ff9b::a00:1]/",
    "http://[64:ff9b:1::a00:1]/",
    "http://[2002:a00:1::1]/",
    "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/",  # Teredo: client 10.0.0.1
    "http://localhost:9000/",
    "http://api.localhost/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://0177.0.0.1/",
    "http://127.1/",
]


def app_client(redis_url: str, **env: str) -> TestClient[Any]:
    return TestClient(create_app(load_settings({"REDIS_URL": redis_url, **env})))


@pytest.fixture
def client(redis_client: redis.Redis, redis_url: str) -> Iterator[TestClient[Any]]:
    with app_client(redis_url) as test_client:
        yield test_client


@pytest.mark.parametrize("url", BLOCKED_LITERALS)
def test_a_blocked_literal_is_a_422_on_url(client: TestClient[Any], url: str) -> None:
    body = assert_problem(client.post("/api/v1/tasks", json={"url": url}), 422, "url")
    assert "egress blocked" in body["detail"] or "IPv4" in body["detail"]
    typed = client.post("/api/v1/tasks", json={"type": "webhook", "payload": {"url": url}})
    assert_problem(typed, 422, "payload.url")


def test_public_literals_and_names_pass_submit(client: TestClient[Any]) -> None:
    for url in ("http://93.184.216.34/", "https://[2606:4700::1111]/", "https://hooks.example.com/x"):
        assert client.post("/api/v1/tasks", json={"url": url}).status_code == 201, url


def test_allow_deny_and_port_lists(redis_client: redis.Redis, redis_url: str) -> None:
    env = {
        "EGRESS_ALLOW_CIDRS": "10.1.0.0/16",
        "EGRESS_DENY_CIDRS": "93.184.216.0/24, 10.1.2.0/24",
        "EGRESS_ALLOW_PORTS": "443,8000-8099",
    }
    with app_client(redis_url, **env) as c:
        assert c.post("/api/v1/tasks", json={"url": "https://10.1.0.5/"}).status_code == 201
        assert c.post("/api/v1/tasks", json={"url": "http://10.1.0.5:8080/"}).status_code == 201
        for url in ("https://10.2.0.5/", "https://10.1.2.3/", "https://93.184.216.34/", "http://10.1.0.5/"):
            assert_problem(c.post("/api/v1/tasks", json={"url": url}), 422, "url")


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"Host": "evil.test"}, "headers.Host"),
        ({"Content-Length": "5"}, "headers.Content-Length"),
        ({"Transfer-Encoding": "chunked"}, "headers.Transfer-Encoding"),
        ({"Connection": "close"}, "headers.Connection"),
        ({"TE": "trailers"}, "headers.TE"),
        ({"Upgrade": "h2c"}, "headers.Upgrade"),
        ({"Proxy-Authorization": "Basic x"}, "headers.Proxy-Authorization"),
        ({"webhook-signature": "v1,forged"}, "headers.webhook-signature"),
        ({"X-A": "a\r\nX-Injected: 1"}, "headers.X-A"),
        ({f"X-H{i}": "v" for i in range(65)}, "headers"),
        ({"X-Big": "v" * 17_000}, "headers"),
    ],
)
def test_hostile_headers_are_refused(client: TestClient[Any], headers: dict[str, str], field: str) -> None:
    r = client.post("/api/v1/tasks", json={"url": "https://hooks.example.com/", "headers": headers})
    assert_problem(r, 422, field)


def test_a_bad_signing_secret_is_refused_without_echoing_it(client: TestClient[Any]) -> None:
    for secret in ("not-a-secret-at-all", "whsec_!!!", "whsec_c2hvcnQ="):
        r = client.post("/api/v1/tasks", json={"url": "https://hooks.example.com/", "signing_secret": secret})
        body = assert_problem(r, 422, "signing_secret")
        assert secret not in r.text
        assert "whsec_" in body["detail"] or "bytes" in body["detail"]


def test_secrets_are_redacted_in_create_get_and_list(
    client: TestClient[Any], redis_client: redis.Redis
) -> None:
    secret = new_secret()
    headers = {
        "Authorization": "Bearer sk_live_1",
        "Cookie": "session=2",
        "X-Api-Key": "k3",
        "X-Auth-Token": "t4",
        "Client-Secret": "s5",
        "X-Trace": "visible",
    }
    hook = {"url": "https://hooks.example.com/", "headers": headers, "signing_secret": secret, "id": "r-1"}
    created = client.post("/api/v1/tasks", json=hook)
    assert created.status_code == 201
    shown = [
        created.json()["payload"],
        client.get("/api/v1/tasks/r-1").json()["payload"],
        client.get("/api/v1/tasks").json()["items"][0]["payload"],
        client.get("/job/r-1").json()["payload"],
    ]
    for payload in shown:
        assert "signing_secret" not in payload
        assert payload["headers"]["X-Trace"] == "visible"
        assert {v for k, v in payload["headers"].items() if k != "X-Trace"} == {"[redacted]"}
    for response_text_ in (created.text, client.get("/api/v1/tasks").text):
        for value in ("sk_live_1", "session=2", "k3", "t4", "s5", secret):
            assert value not in response_text_
    # Stored as given: the worker sends them.
    stored = msgspec.json.decode(cast(str, redis_client.get("qs:payload:r-1")))
    assert stored["headers"]["Authorization"] == "Bearer sk_live_1" and stored["signing_secret"] == secret
    # The same request again is the same task (the secret is part of what was asked).
    assert client.post("/api/v1/tasks", json=hook).status_code == 200


def test_a_payload_without_secret_stores_no_secret_field(
    client: TestClient[Any], redis_client: redis.Redis
) -> None:
    client.post("/api/v1/tasks", json={"url": "https://hooks.example.com/", "id": "n-1"})
    assert "signing_secret" not in cast(str, redis_client.get("qs:payload:n-1"))


# -- the attempt, through the real runner and the worker's guarded client ---------------------------


def test_a_name_resolving_to_a_blocked_address_fails_permanently(
    redis_client: redis.Redis, redis_url: str
) -> None:
    settings = load_settings({"REDIS_URL": redis_url})
    with app_client(redis_url) as c:
        assert (
            c.post("/api/v1/tasks", json={"url": "http://hook.test:8080/x", "id": "b-1"}).status_code == 201
        )
        run_task(redis_client, settings, "b-1", StubDNS({"hook.test": "169.254.169.254"}))
        task = c.get("/api/v1/tasks/b-1").json()
    assert task["status"] == "failed" and task["attempts"] == 1
    [attempt] = task["attempt_history"]
    assert attempt["outcome"] == "permanent"
    expected = "egress blocked: hook.test resolved to 169.254.169.254 "
    expected += "(link-local (cloud metadata) 169.254.0.0/16)"
    assert attempt["error"] == expected


def test_allowed_name_is_delivered_signed_with_a_stable_webhook_id(
    redis_client: redis.Redis, redis_url: str
) -> None:
    old, new = new_secret(), new_secret()
    env = {
        "REDIS_URL": redis_url,
        "EGRESS_ALLOW_CIDRS": "127.0.0.0/8",
        "WEBHOOK_SIGNING_SECRET": f"{new} {old}",
    }
    settings = load_settings(env)
    with Receiver(script=[503], default=200) as rx, app_client(redis_url, **env) as c:
        url = f"http://hook.test:{rx.port}/in"
        assert c.post("/api/v1/tasks", json={"url": url, "body": {"a": 1}, "id": "s-1"}).status_code == 201
        dns = StubDNS({"hook.test": "127.0.0.1"})
        run_task(redis_client, settings, "s-1", dns)
        redis_client.hset("qs:task:s-1", "status", "pending")  # run the retry now, not in 300 ms
        run_task(redis_client, settings, "s-1", dns)
        assert c.get("/api/v1/tasks/s-1").json()["status"] == "completed"
    first, second = rx.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "msg_s-1"
    for request in (first, second):
        for secret in (old, new):  # rotation: either secret verifies
            Verifier(secret).verify(request.body, request.headers)


def test_a_redirect_hop_is_checked_when_redirects_are_enabled(
    redis_client: redis.Redis, redis_url: str
) -> None:
    base = {"REDIS_URL": redis_url, "EGRESS_ALLOW_CIDRS": "127.0.0.0/8"}
    dns = StubDNS({"hook.test": "127.0.0.1", "inside.test": "10.0.0.7"})
    for target, error in [
        ("http://169.254.169.254/latest/meta-data/", "resolved to 169.254.169.254"),
        ("http://inside.test/x", "egress blocked: inside.test resolved to 10.0.0.7"),
    ]:
        redis_client.flushdb()
        settings = load_settings({**base, "WEBHOOK_FOLLOW_REDIRECTS": "true"})
        with Receiver(default=Reply(302, {"Location": target})) as rx, app_client(redis_url, **base) as c:
            c.post("/api/v1/tasks", json={"url": f"http://hook.test:{rx.port}/", "id": "d-1"})
            run_task(redis_client, settings, "d-1", dns)
            task = c.get("/api/v1/tasks/d-1").json()
        assert task["status"] == "failed", task
        assert error in task["attempt_history"][0]["error"]
        assert len(rx.requests) == 1
    # Off (the default): the 3xx itself is the answer, a permanent failure.
    redis_client.flushdb()
    with (
        Receiver(default=Reply(302, {"Location": "http://10.0.0.1/"})) as rx,
        app_client(redis_url, **base) as c,
    ):
        c.post("/api/v1/tasks", json={"url": f"http://hook.test:{rx.port}/", "id": "d-2"})
        run_task(redis_client, load_settings(base), "d-2", dns)
        attempt = c.get("/api/v1/tasks/d-2").json()["attempt_history"][0]
    assert attempt["outcome"] == "permanent" and attempt["status_code"] == 302


def test_only_a_prefix_is_kept_and_binary_is_a_marker(redis_client: redis.Redis, redis_url: str) -> None:
    env = {"REDIS_URL": redis_url, "EGRESS_ALLOW_CIDRS": "127.0.0.0/8"}
    png = b"\x89PNG\r\n\x1a\n" + bytes(2337)
    replies = [
        Reply(200, {"Content-Type": "image/png"}, png),
        Reply(200, {"Content-Type": "text/plain"}, b"x" * 5000),
    ]
    with Receiver(script=replies) as rx, app_client(redis_url, **env) as c:
        for task_id in ("p-1", "p-2"):
            c.post("/api/v1/tasks", json={"url": rx.url("/"), "id": task_id})
            run_task(redis_client, load_settings(env), task_id, StubDNS({}))
        binary = c.get("/api/v1/tasks/p-1").json()["attempt_history"][0]["response_body"]
        text = c.get("/api/v1/tasks/p-2").json()["attempt_history"][0]["response_body"]
    assert binary == "<binary: 2,345 bytes, image/png>"
    assert text == "x" * 1024


def test_response_text_rules() -> None:
    assert response_text(b'{"ok": true}', "application/json; charset=utf-8") == '{"ok": true}'
    assert response_text(b"a\x00b", None) == "<binary: 3 bytes, no content type>"
    assert (
        response_text(b"abc", "application/octet-stream", 10_000)
        == "<binary: 10,000 bytes, application/octet-stream>"
    )
    assert response_text(b"<x/>", "application/atom+xml") == "<x/>"


def test_make_run_opens_loopback_only_when_unset_in_development() -> None:
    dev = functools.partial(child_env, production=False)
    assert dev({}, "redis://r")["EGRESS_ALLOW_CIDRS"] == "127.0.0.0/8"
    assert dev({"EGRESS_ALLOW_CIDRS": ""}, "redis://r")["EGRESS_ALLOW_CIDRS"] == ""
    assert dev({"EGRESS_ALLOW_CIDRS": "10.0.0.0/8"}, "redis://r")["EGRESS_ALLOW_CIDRS"] == "10.0.0.0/8"


def test_production_opens_nothing_implicitly() -> None:
    prod = functools.partial(child_env, production=True)
    assert "EGRESS_ALLOW_CIDRS" not in prod({"ENV": "production"}, "redis://r")
    assert prod({"EGRESS_ALLOW_CIDRS": "10.0.0.0/8"}, "redis://r")["EGRESS_ALLOW_CIDRS"] == "10.0.0.0/8"
