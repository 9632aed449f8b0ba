"""The development inbox in process (real Redis, the real app through Litestar's TestClient): what
the receiver records, the signature check against an independent verifier, the bounds, the
redaction every reader gets, the key check on the API routes, and where it is off."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from litestar.testing import TestClient
from standardwebhooks import Webhook

from queue_system.api.app import create_app
from queue_system.api.inbox import MAX_REQUEST_BYTES
from queue_system.config.settings import load_settings
from queue_system.errors import ConfigError
from queue_system.local.launcher import start_inbox
from queue_system.storage import inbox
from queue_system.transports.signing import new_secret, parse_secret, verify, webhook_headers

SECRET = new_secret()
KEY = "k" * 32


def app_client(redis_url: str, **env: str) -> TestClient[Any]:
    return TestClient(create_app(load_settings({"REDIS_URL": redis_url, "DEV_INBOX": "true", **env})))


@pytest.fixture
def client(redis_client: redis.Redis, redis_url: str) -> Iterator[TestClient[Any]]:
    with app_client(redis_url, WEBHOOK_SIGNING_SECRET=SECRET) as test_client:
        yield test_client


def requests_of(client: TestClient[Any], name: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/dev/inbox/{name}")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_a_signed_delivery_is_recorded_and_verified(client: TestClient[Any]) -> None:
    body = b'{"hello": "inbox"}'
    signed = webhook_headers("msg_task-1", body, [parse_secret(SECRET)], time.time())
    headers = {**signed, "Content-Type": "application/json", "Authorization": "Bearer s3cret-t0ken"}
    answer = client.post("/dev/inbox/demo?page=2&token=abc", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"inbox": "demo", "signature": "verified"}

    [got] = requests_of(client, "demo")
    assert got["method"] == "POST" and got["body"] == body.decode() and got["body_bytes"] == len(body)
    assert got["path"] == "/dev/inbox/demo?page=2&token=[redacted]"
    assert got["signature"] == "verified" and got["task_id"] == "task-1"
    shown = dict(got["headers"])
    assert shown["authorization"] == "[redacted]" and shown["webhook-signature"] == "[redacted]"
    assert shown["content-type"] == "application/json" and shown["webhook-id"] == "msg_task-1"
    assert "s3cret-t0ken" not in client.get("/api/v1/dev/inbox/demo").text
    listed = client.get("/api/v1/dev/inbox").json()["items"]
    assert [(i["name"], i["requests"]) for i in listed] == [("demo", 1)]


@pytest.mark.parametrize(
    ("change", "state"),
    [
        ({"webhook-signature": "v1,AAAA"}, "invalid"),
        ({"webhook-timestamp": str(int(time.time()) - 3600)}, "invalid"),  # signed, but an hour ago
        ({"webhook-signature": None}, "unsigned"),
    ],
)
def test_a_bad_old_or_missing_signature_says_so(
    client: TestClient[Any], change: dict[str, str | None], state: str
) -> None:
    body = b"payload"
    headers: dict[str, str | None] = {**webhook_headers("msg_x", body, [parse_secret(SECRET)], time.time())}
    headers |= change
    sent = {k: v for k, v in headers.items() if v is not None}
    assert client.put("/dev/inbox/sig", content=body, headers=sent).json()["signature"] == state
    assert requests_of(client, "sig")[0]["method"] == "PUT"


def test_without_a_secret_a_signature_is_unchecked(redis_client: redis.Redis, redis_url: str) -> None:
    body = b"x"
    with app_client(redis_url) as client:
        headers = webhook_headers("msg_y", body, [parse_secret(SECRET)], time.time())
        assert client.post("/dev/inbox/a", content=body, headers=headers).json()["signature"] == "unchecked"


def test_our_verifier_agrees_with_the_standardwebhooks_package() -> None:
    body = b'{"n": 1}'
    now = datetime.now(UTC)
    signed = {"webhook-id": "msg_1", "webhook-timestamp": str(int(now.timestamp()))}
    signed["webhook-signature"] = Webhook(SECRET).sign("msg_1", now, body.decode())
    Webhook(SECRET).verify(body, signed)  # the package accepts it ...
    assert verify(signed, body, [parse_secret(SECRET)], now.timestamp())  # ... and so do we
    other = parse_secret("whsec_" + base64.b64encode(b"o" * 32).decode())
    assert not verify(signed, body, [other], now.timestamp())
    assert not verify(signed, body + b" ", [parse_secret(SECRET)], now.timestamp())


@pytest.mark.parametrize("name", ["bad.name", "a" * 65, "sp%20ace", "%C3%A9"])
def test_a_bad_name_is_a_422_naming_it(client: TestClient[Any], name: str) -> None:
    for response in (
        client.post(f"/dev/inbox/{name}", content=b"x"),
        client.get(f"/api/v1/dev/inbox/{name}"),
    ):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["field"] == "name"


def test_a_body_is_bounded(client: TestClient[Any], redis_client: redis.Redis) -> None:
    too_big = client.post("/dev/inbox/big", content=b"x" * (MAX_REQUEST_BYTES + 1))
    assert too_big.status_code == 413, too_big.text
    assert client.post("/dev/inbox/big", content=b"y" * (inbox.MAX_BODY_BYTES + 10)).status_code == 200
    [kept] = requests_of(client, "big")
    assert kept["truncated"] and kept["body_bytes"] == inbox.MAX_BODY_BYTES + 10
    assert len(kept["body"]) == inbox.MAX_BODY_BYTES


def test_inboxes_and_their_requests_are_capped_and_expire(
    client: TestClient[Any], redis_client: redis.Redis
) -> None:
    for n in range(inbox.INBOX_CAP + 5):
        client.post("/dev/inbox/many", content=str(n).encode())
    kept = requests_of(client, "many")
    assert len(kept) == inbox.INBOX_CAP and kept[0]["body"] == str(inbox.INBOX_CAP + 4)  # newest first
    for n in range(inbox.MAX_INBOXES + 3):
        client.post(f"/dev/inbox/box-{n}", content=b"x")
    names = [i["name"] for i in client.get("/api/v1/dev/inbox").json()["items"]]
    assert len(names) == inbox.MAX_INBOXES and names[0] == f"box-{inbox.MAX_INBOXES + 2}"
    keys = [k for k in redis_client.scan_iter("qs:inbox*")]
    assert len(keys) == inbox.MAX_INBOXES + 1  # the lists of the kept inboxes and the set of them
    assert all(0 < int(redis_client.pttl(k)) <= inbox.INBOX_TTL_MS for k in keys)  # type: ignore[arg-type]


def test_the_api_routes_need_a_key_the_receiver_does_not(redis_client: redis.Redis, redis_url: str) -> None:
    with app_client(redis_url, API_KEYS=KEY) as client:
        assert client.post("/dev/inbox/open", content=b"hi").status_code == 200
        assert client.get("/api/v1/dev/inbox").status_code == 401
        assert client.get("/api/v1/dev/inbox/open").status_code == 401
        listed = client.get("/api/v1/dev/inbox", headers={"Authorization": f"Bearer {KEY}"})
        assert listed.status_code == 200 and listed.json()["items"][0]["name"] == "open"


def test_the_dashboard_shows_the_inbox_redacted(client: TestClient[Any]) -> None:
    client.post("/dev/inbox/demo", content=b"<b>hello</b>", headers={"X-Api-Key": "hunter2-hunter2"})
    page = client.get("/dashboard/inbox")
    assert page.status_code == 200
    assert "demo" in page.text and "&lt;b&gt;hello&lt;/b&gt;" in page.text and "<b>hello" not in page.text
    assert "hunter2" not in page.text and "[redacted]" in page.text
    assert 'href="/dashboard/inbox"' in client.get("/dashboard/").text  # beside the mailbox


def test_off_unless_turned_on(redis_client: redis.Redis, redis_url: str) -> None:
    with TestClient(create_app(load_settings({"REDIS_URL": redis_url}))) as client:
        assert client.post("/dev/inbox/demo", content=b"x").status_code == 404
        assert client.get("/api/v1/dev/inbox").status_code == 404
        assert "inbox is off" in client.get("/dashboard/inbox").text
    assert redis_client.exists("qs:inboxes") == 0


def test_production_never_serves_it() -> None:
    with pytest.raises(ConfigError, match="DEV_INBOX"):
        load_settings({"ENV": "production", "DEV_INBOX": "true"})
    env: dict[str, str] = {}
    assert start_inbox(load_settings({"ENV": "production"}), {"ENV": "production"}, env) is None
    assert "DEV_INBOX" not in env


def test_make_run_turns_it_on_in_development_unless_set() -> None:
    env: dict[str, str] = {}
    url = start_inbox(load_settings({"API_PORT": "8100"}), {}, env)
    assert url == "http://127.0.0.1:8100/dev/inbox" and env == {"DEV_INBOX": "true"}
    off: dict[str, str] = {}
    assert start_inbox(load_settings({"DEV_INBOX": "false"}), {"DEV_INBOX": "false"}, off) is None
    assert off == {}
