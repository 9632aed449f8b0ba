"""The Redis token bucket against the real embedded Redis: burst, refill, expiry, and two processes
hammering one key never over-admit."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from queue_system.storage.rate_limit import AsyncRateLimiter, Rate, RateDecision, RateLimiter, bucket_key


@pytest.mark.parametrize(
    ("text", "count", "period_ms"),
    [
        ("100/s", 100, 1000),
        ("6000/min", 6000, 60_000),
        ("10/5s", 10, 5000),
        ("1/h", 1, 3_600_000),
        (" 7 / ms ", 7, 1),
    ],
)
def test_parse(text: str, count: int, period_ms: int) -> None:
    rate = Rate.parse(text)
    assert (rate.count, rate.period_ms, rate.burst) == (count, period_ms, count)
    assert Rate.parse(text, burst=3).burst == 3


@pytest.mark.parametrize("text", ["", "100", "100/fortnight", "0/s", "-1/s", "1.5/s", "100/0s"])
def test_parse_rejects_naming_the_field(text: str) -> None:
    with pytest.raises(ValueError, match="API_RATE_LIMIT"):
        Rate.parse(text)


def test_burst_then_refusal_with_retry_after(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client, Rate.parse("5/s"))
    decisions = [limiter.check("key-a") for _ in range(5)]
    assert all(d.allowed for d in decisions)
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
    refused = limiter.check("key-a")
    assert not refused.allowed
    assert 1 <= refused.retry_after_ms <= 200  # one token every 200 ms
    assert refused.retry_after_s == 1
    assert limiter.check("key-b").allowed  # buckets are per key


def test_refill_after_retry_after(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client, Rate.parse("10/s", burst=1))
    assert limiter.check("k").allowed
    refused = limiter.check("k")
    assert not refused.allowed
    deadline = time.monotonic() + 2
    # Time has to pass for a token to come back; poll at the advertised retry-after.
    time.sleep(refused.retry_after_ms / 1000)
    while not limiter.check("k").allowed:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_key_expires_and_does_not_name_the_identity(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client, Rate.parse("2/s"))
    limiter.check("secret-api-key-123456")
    keys = redis_client.keys("*")
    assert keys == [bucket_key("qs", "secret-api-key-123456")]
    assert "secret" not in keys[0]
    ttl = redis_client.pttl(keys[0])
    assert isinstance(ttl, int)
    assert 0 < ttl <= 500 + 1000  # time until full again (one token: 500 ms) plus slack


def test_cost_larger_than_burst_is_never_admitted(redis_client: redis.Redis) -> None:
    limiter = RateLimiter(redis_client, Rate.parse("2/s"))
    assert not limiter.check("k", cost=3).allowed
    assert limiter.check("k", cost=2).allowed


def test_async_limiter(redis_url: str, redis_client: redis.Redis) -> None:
    async def go() -> list[RateDecision]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            limiter = AsyncRateLimiter(client, Rate.parse("3/min"))
            return [await limiter.check("k") for _ in range(4)]
        finally:
            await client.aclose()

    decisions = asyncio.run(go())
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert 19_000 <= decisions[-1].retry_after_ms <= 20_000


def _hammer(redis_url: str, rate: str, tries: int, barrier: Any, results: Any) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        limiter = RateLimiter(client, Rate.parse(rate))
        barrier.wait(30)  # both processes start checking together
        results.put(sum(limiter.check("shared").allowed for _ in range(tries)))
    finally:
        client.close()


def test_two_processes_never_over_admit(redis_url: str, redis_client: redis.Redis) -> None:
    """Two API-like processes share one bucket of 500 that refills one token every 120 ms: however
    the checks interleave, admissions never exceed the burst plus what refilled meanwhile."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [
        context.Process(target=_hammer, args=(redis_url, "500/min", 1500, barrier, results)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    started = time.monotonic()
    admitted = [results.get(timeout=50) for _ in workers]
    elapsed_ms = (time.monotonic() - started) * 1000  # includes start-up: an upper bound
    for worker in workers:
        worker.join(10)
        assert worker.exitcode == 0
    refilled = int(elapsed_ms // 120) + 1
    assert 500 <= sum(admitted) <= 500 + refilled, (admitted, elapsed_ms)
    assert all(a > 0 for a in admitted), admitted  # both really competed for the same bucket
