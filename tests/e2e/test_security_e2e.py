"""Security end to end, with real processes: keys on a running API, signed deliveries verified by
the independent `standardwebhooks` package (rotation, per-task secret, a webhook-id stable across
attempts), secrets absent from every log line, and one rate limit shared by two API processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from queue_system.transports.signing import new_secret
from tests.e2e import support
from tests.e2e.support import stack, wait_for_status
from tests.support.receiver import Receiver

pytestmark = pytest.mark.e2e

KEY = "e2e-write-key-0123456789"
READ_KEY = "e2e-read-key-0123456789"
OLD, NEW, TASK_SECRET = new_secret(), new_secret(), new_secret()


@pytest.fixture(scope="module")
def secured(redis_url: str, e2e_logs: Path) -> Iterator[support.Stack]:
    env = {
        "API_KEYS": KEY,
        "API_READ_KEYS": READ_KEY,
        "WEBHOOK_SIGNING_SECRET": f"{NEW} {OLD}",
        "LOG_LEVEL": "DEBUG",  # the chattiest logs must still hold no secret
    }
    with stack(redis_url, e2e_logs, **env) as running:
        yield running


@pytest.fixture
def api(secured: support.Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=secured.base_url, timeout=10, headers={"X-API-Key": KEY}) as client:
        yield client


def test_a_running_api_asks_for_keys(secured: support.Stack) -> None:
    with httpx.Client(base_url=secured.base_url, timeout=10) as anonymous:
        r = anonymous.post("/api/v1/tasks", json={"type": "echo", "payload": "x"})
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert r.headers["content-type"].startswith("application/problem+json")
        read = {"Authorization": f"Bearer {READ_KEY}"}
        assert anonymous.get("/api/v1/tasks", headers=read).status_code == 200
        assert (
            anonymous.post("/api/v1/tasks", json={"type": "echo", "payload": "x"}, headers=read).status_code
            == 403
        )
        assert anonymous.get("/health").status_code == 200


def test_deliveries_are_signed_verifiably_with_rotation(
    secured: support.Stack, api: httpx.Client, receiver: Receiver
) -> None:
    receiver.program([500])  # the first attempt fails: the retry must carry the same id
    server_signed = support.submit(
        api,
        {"url": receiver.url("/a"), "body": {"n": 1}, "headers": {"Authorization": "Bearer rx-token-1"}},
    )
    wait_for_status(api, server_signed, "completed")
    task_signed = support.submit(
        api, {"url": receiver.url("/b"), "body": '{"sent": "as is"}', "signing_secret": TASK_SECRET}
    )
    wait_for_status(api, task_signed, "completed")

    first, retry, own = receiver.requests
    assert first.headers["webhook-id"] == retry.headers["webhook-id"] == f"msg_{server_signed}"
    assert first.headers["authorization"] == "Bearer rx-token-1"
    for request in (first, retry):
        assert len(request.headers["webhook-signature"].split()) == 2  # one `v1,` entry per secret
        for secret in (OLD, NEW):
            Verifier(secret).verify(request.body, request.headers)
    assert own.headers["webhook-id"] == f"msg_{task_signed}" and own.body == b'{"sent": "as is"}'
    Verifier(TASK_SECRET).verify(own.body, own.headers)
    with pytest.raises(WebhookVerificationError):  # the task's secret replaces the server's
        Verifier(NEW).verify(own.body, own.headers)
    tampered = dict(own.headers, **{"webhook-id": "msg_other"})
    with pytest.raises(WebhookVerificationError):
        Verifier(TASK_SECRET).verify(own.body, tampered)

    shown = api.get(f"/api/v1/tasks/{task_signed}").text + api.get("/api/v1/tasks").text
    assert TASK_SECRET not in shown and "rx-token-1" not in shown
    logs = secured.api.log() + secured.worker.log()
    for secret in (KEY, READ_KEY, OLD, NEW, TASK_SECRET, "rx-token-1"):
        assert secret not in logs


def test_one_rate_limit_across_two_api_processes(redis_url: str, e2e_logs: Path) -> None:
    env = {"API_KEYS": KEY, "API_RATE_LIMIT": "10/min"}
    first, first_url = support.start_api(redis_url, e2e_logs, "api-a", **env)
    try:
        second, second_url = support.start_api(redis_url, e2e_logs, "api-b", **env)
        try:
            codes: list[int] = []
            retry_after: list[str] = []
            for i in range(16):
                url = (first_url, second_url)[i % 2]
                r = httpx.get(f"{url}/api/v1/stats", headers={"X-API-Key": KEY}, timeout=10)
                codes.append(r.status_code)
                if r.status_code == 429:
                    retry_after.append(r.headers["retry-after"])
            assert codes.count(200) == 10 and codes.count(429) == 6, codes
            assert codes[:10] == [200] * 10  # strict: neither process admitted more than its share
            assert all(1 <= int(s) <= 60 for s in retry_after)
        finally:
            second.stop()
    finally:
        first.stop()
