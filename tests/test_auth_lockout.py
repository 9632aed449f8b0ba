"""Wrong keys are throttled per client address (issue 17, point 5): the Redis record on its own, the
API's guard and the dashboard's sign-in in-process (real apps, real Redis; two apps share one Redis
as two API processes would), and the client address behind proxies (a property over forged
X-Forwarded-For chains). Two real API processes: tests/e2e/test_auth_lockout_e2e.py."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st
from litestar.testing import TestClient
from loguru import logger

from queue_system.api.app import create_app
from queue_system.api.auth import client_address, counted_as
from queue_system.config.settings import load_settings
from queue_system.storage.auth_failures import AsyncFailureThrottle, FailureLimit, FailureState
from queue_system.storage.keys import Keys
from queue_system.testing import poll
from tests.support.api import assert_problem
from tests.support.dashboard import csrf_of

KEY = "lockout-write-key-0123456789"
WRONG = "wrong-key-{}-0123456789abcdef"
ENV = {"API_KEYS": KEY, "API_AUTH_FAILURES": "3/min", "API_AUTH_LOCKOUT": "1s"}


def throttle_calls(redis_url: str, limit: FailureLimit, calls: list[tuple[str, str]]) -> list[FailureState]:
    async def go() -> list[FailureState]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            throttle = AsyncFailureThrottle(client, limit)
            return [await (throttle.failed(a) if op == "fail" else throttle.state(a)) for op, a in calls]
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_threshold_locks_and_each_lockout_doubles(redis_url: str, redis_client: redis.Redis) -> None:
    limit = FailureLimit(threshold=3, window_ms=60_000, lockout_ms=300, max_lockout_ms=1_000)
    first = throttle_calls(
        redis_url, limit, [("fail", "1.2.3.4")] * 4 + [("check", "1.2.3.4"), ("check", "5.6.7.8")]
    )
    assert [s.fails for s in first[:2]] == [1, 2] and not any(s.locked_ms for s in first[:2])
    assert first[2].new_lock and 200 < first[2].locked_ms <= 300 and first[2].strikes == 1
    assert not first[3].new_lock and 0 < first[3].locked_ms <= 300  # locked: not counted again
    assert first[4].locked_ms > 0 and first[5].locked_ms == 0  # another address is untouched

    def unlocked() -> bool:
        return throttle_calls(redis_url, limit, [("check", "1.2.3.4")])[0].locked_ms == 0

    lockouts = []
    for _ in range(3):  # 600 ms, then 1000 ms (the cap), then 1000 ms again
        assert poll(unlocked, timeout=5, interval=0.05)
        lockouts.append(throttle_calls(redis_url, limit, [("fail", "1.2.3.4")] * 3)[-1])
    assert [s.strikes for s in lockouts] == [2, 3, 4]
    assert 500 < lockouts[0].locked_ms <= 600 and 900 < lockouts[1].locked_ms <= 1_000
    assert 900 < lockouts[2].locked_ms <= 1_000
    # One record per address, named by a hash of it, with an expiry.
    [name] = cast(list[str], redis_client.keys("qs:authfail:*"))
    assert name == Keys().auth_failures("1.2.3.4") and "1.2.3.4" not in name
    assert cast(int, redis_client.pttl(name)) > 0


def test_an_address_never_locked_is_forgotten_when_its_window_ends(
    redis_url: str, redis_client: redis.Redis
) -> None:
    # Found by reading the script: one wrong key from a fresh address kept its record for a day
    # (STRIKE_MEMORY_MS), so a stranger rotating addresses (an IPv6 /48 holds 65,536 /64s) could
    # fill Redis with records without ever holding a key. Only an address locked before needs its
    # strikes remembered.
    limit = FailureLimit(threshold=3, window_ms=60_000, lockout_ms=1_000)
    throttle_calls(redis_url, limit, [("fail", f"2001:db8:{n:x}::/64") for n in range(20)])
    names = cast(list[str], redis_client.keys("qs:authfail:*"))
    assert len(names) == 20 and all(0 < cast(int, redis_client.pttl(n)) <= 60_000 for n in names)
    throttle_calls(redis_url, limit, [("fail", "1.2.3.4")] * 3)  # locked: its strikes count for a day
    assert cast(int, redis_client.pttl(Keys().auth_failures("1.2.3.4"))) > 23 * 3600 * 1000


def test_a_window_without_enough_failures_starts_over(redis_url: str, redis_client: redis.Redis) -> None:
    limit = FailureLimit(threshold=3, window_ms=200, lockout_ms=10_000)
    assert [s.fails for s in throttle_calls(redis_url, limit, [("fail", "a")] * 2)] == [1, 2]
    assert poll(lambda: _window_over(redis_client), timeout=3, interval=0.05)
    assert throttle_calls(redis_url, limit, [("fail", "a")])[0].fails == 1


def _window_over(redis_client: redis.Redis) -> bool:
    seconds, micros = cast(tuple[int, int], redis_client.time())
    end = redis_client.hget(Keys().auth_failures("a"), "window_end")
    if end is None:  # never locked: the record expires with its window
        return True
    return seconds * 1000 + micros // 1000 > int(cast(str, end))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def two_apps(redis_client: redis.Redis, redis_url: str) -> Iterator[tuple[TestClient[Any], TestClient[Any]]]:
    settings = load_settings({"REDIS_URL": redis_url, **ENV})
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
        yield first, second


def test_wrong_keys_lock_the_address_in_every_api_process(
    two_apps: tuple[TestClient[Any], TestClient[Any]],
) -> None:
    a, b = two_apps
    assert a.get("/api/v1/stats", headers=bearer(KEY)).status_code == 200
    codes = [a.get("/api/v1/stats", headers=bearer(WRONG.format(i))).status_code for i in range(2)]
    locked = b.get("/api/v1/stats", headers={"X-API-Key": WRONG.format(2)})  # the third, on the other
    assert codes == [401, 401]
    body = assert_problem(locked, 429)
    assert body["type"].endswith(":too-many-failures") and locked.headers["retry-after"] == "1"
    # Locked: refused before the key is looked at, a valid key too, on both; the first app learns
    # of the lock at its next wrong key.
    assert b.get("/api/v1/stats", headers=bearer(KEY)).status_code == 429
    assert a.get("/api/v1/stats", headers=bearer(WRONG.format(3))).status_code == 429
    assert a.get("/api/v1/stats", headers=bearer(KEY)).status_code == 429
    # A missing key is not a guess; open routes stay open.
    assert a.get("/health").status_code == 200
    # Lockouts end: the valid key works again, and the next lockout is twice as long.
    assert poll(
        lambda: b.get("/api/v1/stats", headers=bearer(KEY)).status_code == 200, timeout=5, interval=0.1
    )
    assert poll(
        lambda: a.get("/api/v1/stats", headers=bearer(KEY)).status_code == 200, timeout=5, interval=0.1
    )
    again = [b.get("/api/v1/stats", headers=bearer(WRONG.format(i))) for i in range(3)]
    assert [r.status_code for r in again] == [401, 401, 429]
    assert again[-1].headers["retry-after"] == "2"


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(redis_client: redis.Redis, redis_url: str) -> None:
    # The TestClient's peer is not in API_TRUSTED_PROXIES (unset): every request is one address,
    # whatever X-Forwarded-For it claims.
    with TestClient(create_app(load_settings({"REDIS_URL": redis_url, **ENV}))) as c:
        codes = [
            c.get(
                "/api/v1/stats", headers={**bearer(WRONG.format(i)), "X-Forwarded-For": f"198.51.100.{i}"}
            ).status_code
            for i in range(4)
        ]
        assert codes == [401, 401, 429, 429]


def test_a_locked_address_cannot_sign_in_and_the_key_is_never_logged(
    two_apps: tuple[TestClient[Any], TestClient[Any]],
) -> None:
    a, b = two_apps
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG")
    try:
        tried = [sign_in(a, WRONG.format(i)) for i in range(3)]
        assert [r.status_code for r in tried] == [401, 401, 429]
        assert tried[-1].headers["retry-after"] == "1" and "Too many wrong keys" in tried[-1].text
        # The other process asks Redis before checking the key: the right key waits too.
        refused = sign_in(b, KEY)
        assert refused.status_code == 429 and "qs_dashboard" not in refused.cookies
        # API and dashboard share the count: the address's API calls are refused as well.
        assert b.get("/api/v1/stats", headers=bearer(KEY)).status_code == 429
        assert poll(lambda: sign_in(b, KEY).status_code == 200, timeout=5, interval=0.1)
    finally:
        logger.remove(sink)
    log = "".join(lines)
    assert log.count("dashboard sign-in failed from testclient") == 3  # the one that locked too
    assert "locked out for 1s after 3 wrong keys" in log
    assert "wrong-key-" not in log and KEY not in log


def sign_in(client: TestClient[Any], key: str) -> Any:
    form = client.get("/dashboard/login")
    return client.post(
        "/dashboard/login", data={"csrf": csrf_of(form.text), "key": key, "next": "/dashboard/tasks"}
    )


TRUSTED = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))
public_v4 = st.integers(0x0B000000, 0x64000000).map(
    lambda n: str(ipaddress.IPv4Address(n))
)  # 11.0.0.0 - 100.0.0.0
anything = st.text(st.characters(exclude_categories=["Cs"], exclude_characters=","), max_size=20)


@given(peer=public_v4, forged=st.lists(anything, max_size=4))
def test_an_untrusted_peer_is_the_client_whatever_it_forwards(peer: str, forged: list[str]) -> None:
    assert client_address(peer, ", ".join(forged) or None, TRUSTED) == peer


@given(
    forged=st.lists(st.one_of(anything, public_v4, st.just("10.9.9.9")), max_size=4),
    real=public_v4,
    proxies=st.lists(st.sampled_from(["10.0.0.2", "10.1.2.3", "::1"]), max_size=3),
)
def test_behind_trusted_proxies_the_client_is_what_the_first_proxy_saw(
    forged: list[str], real: str, proxies: list[str]
) -> None:
    # The client sends any X-Forwarded-For it likes; the first trusted proxy appends the address it
    # saw (`real`), each further proxy the one before it; the last one connects to us.
    chain = [*forged, real, *proxies[:-1]] if proxies else [*forged, real]
    peer = proxies[-1] if proxies else "10.0.0.1"
    assert client_address(peer, ", ".join(chain), TRUSTED) == real


def test_client_address_examples() -> None:
    assert client_address("10.0.0.1", None, TRUSTED) == "10.0.0.1"
    assert client_address("10.0.0.1", "203.0.113.9", ()) == "10.0.0.1"  # no trusted proxies: ignored
    assert client_address("10.0.0.1", "10.0.0.7, 10.0.0.8", TRUSTED) == "10.0.0.7"  # all trusted
    assert client_address("10.0.0.1", "203.0.113.9, not-an-ip", TRUSTED) == "10.0.0.1"
    assert client_address("::ffff:10.0.0.1", "[2001:db8::1]", TRUSTED) == "2001:db8::1"
    assert client_address(None, "203.0.113.9", TRUSTED) == "unknown"


def test_ipv6_clients_count_by_their_64() -> None:
    assert counted_as("2001:db8:1:2:aaaa::1") == counted_as("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert counted_as("2001:db8:1:3::1") != counted_as("2001:db8:1:2::1")
    assert counted_as("203.0.113.9") == "203.0.113.9" == counted_as("::ffff:203.0.113.9")
    assert counted_as("testclient") == "testclient"
