"""Wrong keys locked out per client address across two real API processes on one Redis, behind a
trusted proxy (API_TRUSTED_PROXIES=127.0.0.1/32: the test is the proxy and says who the client is),
and the per-address rate limit using the same address. The key never reaches a log line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from queue_system.testing import poll
from tests.e2e import support

pytestmark = pytest.mark.e2e

KEY = "e2e-lockout-key-0123456789"
WRONG = "e2e-wrong-key-{}-0123456789"
ATTACKER, BYSTANDER = "203.0.113.66", "198.51.100.7"


@pytest.fixture(scope="module")
def two_apis(redis_url: str, e2e_logs: Path) -> Iterator[tuple[tuple[support.Proc, support.Proc], str, str]]:
    env = {
        "API_KEYS": KEY,
        "API_AUTH_FAILURES": "6/min",
        # Long enough that a loaded machine still sees the lockout before it ends (a 1 s lockout
        # ended between the burst and the next call once, under a full CI run).
        "API_AUTH_LOCKOUT": "3s",
        "API_TRUSTED_PROXIES": "127.0.0.1/32",
    }
    first, first_url = support.start_api(redis_url, e2e_logs, "api-lock-a", **env)
    try:
        second, second_url = support.start_api(redis_url, e2e_logs, "api-lock-b", **env)
        try:
            yield (first, second), first_url, second_url
            assert KEY not in first.log() + second.log()
            assert "e2e-wrong-key" not in first.log() + second.log()
        finally:
            second.stop()
    finally:
        first.stop()


def call(base_url: str, key: str, client: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", "X-Forwarded-For": f"10.9.9.9, {client}"}
    return httpx.get(f"{base_url}/api/v1/stats", headers=headers, timeout=10)


def test_a_burst_of_wrong_keys_is_locked_out_on_both_processes(
    two_apis: tuple[tuple[support.Proc, support.Proc], str, str], redis_client: object
) -> None:
    procs, a, b = two_apis
    urls = (a, b)
    codes = [call(urls[i % 2], WRONG.format(i), ATTACKER).status_code for i in range(10)]
    assert codes == [401] * 5 + [429] * 5, codes  # six wrong keys between the two, then locked
    locked = call(a, KEY, ATTACKER)
    assert locked.status_code == 429 and 1 <= int(locked.headers["retry-after"]) <= 3
    assert locked.headers["content-type"].startswith("application/problem+json")
    # Another client behind the same proxy is not slowed at all, on either process.
    assert [call(u, KEY, BYSTANDER).status_code for u in urls * 3] == [200] * 6
    # The sixth wrong key went to the second process: it locked the address and said so.
    procs[1].expect_log(f"API key checks from {ATTACKER} locked out for 3s after 6 wrong keys", timeout=5)

    # Once the lockout ends the valid key works again; the next burst locks for twice as long.
    assert poll(lambda: call(b, KEY, ATTACKER).status_code == 200, timeout=15, interval=0.1)
    assert poll(lambda: call(a, KEY, ATTACKER).status_code == 200, timeout=15, interval=0.1)
    again = [call(urls[i % 2], WRONG.format(i), ATTACKER) for i in range(6)]
    assert [r.status_code for r in again] == [401] * 5 + [429]
    assert 3 < int(again[-1].headers["retry-after"]) <= 6  # twice the 3 s, counting down
    # The proxy's own address never counted: it is trusted, not the client.
    assert call(a, KEY, BYSTANDER).status_code == 200


def test_without_trusted_proxies_a_forged_x_forwarded_for_changes_nothing(
    redis_url: str, e2e_logs: Path, redis_client: object
) -> None:
    # uvicorn itself trusts X-Forwarded-For from 127.0.0.1 by default; the API turns that off, so
    # a client rotating the header is still one address (its peer's).
    env = {"API_KEYS": KEY, "API_AUTH_FAILURES": "3/min", "API_AUTH_LOCKOUT": "1s"}
    proc, url = support.start_api(redis_url, e2e_logs, "api-untrusting", **env)
    try:
        tried = [call(url, WRONG.format(i), f"192.0.2.{i}") for i in range(5)]
        assert [r.status_code for r in tried] == [401, 401, 429, 429, 429]
        assert tried[-1].json()["type"].endswith(":too-many-failures")
        proc.expect_log("API key checks from 127.0.0.1 locked out", timeout=5)
    finally:
        proc.stop()
    # The per-address rate limit (an API without keys) counts the peer, not the header, too.
    proc, url = support.start_api(redis_url, e2e_logs, "api-open-limited", API_RATE_LIMIT="5/min")
    try:
        forged = [
            httpx.get(f"{url}/api/v1/stats", headers={"X-Forwarded-For": f"192.0.2.{i}"}, timeout=10)
            for i in range(6)
        ]
        assert [r.status_code for r in forged] == [200] * 5 + [429]
        assert forged[-1].json()["type"].endswith(":rate-limited")
    finally:
        proc.stop()
