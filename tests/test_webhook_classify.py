"""Unit tests of webhook outcome classification and Retry-After parsing (pure logic)."""

from __future__ import annotations

import asyncio
import email.utils

import httpx
import pytest

from queue_system.domain.models import AttemptResult, Outcome
from queue_system.transports.async_http import AsyncHttpSender, PoolLimits, WebhookRequest
from queue_system.transports.http import classify, parse_retry_after
from tests.support.receiver import Receiver, Reply


@pytest.mark.parametrize("code", [200, 201, 204, 299])
def test_2xx_is_success(code: int) -> None:
    r = classify(httpx.Response(code), b"ok")
    assert r.outcome is Outcome.SUCCESS
    assert r.status_code == code


@pytest.mark.parametrize("code", [408, 425, 429, 500, 502, 503, 504])
def test_transient_statuses(code: int) -> None:
    assert classify(httpx.Response(code), b"").outcome is Outcome.TRANSIENT


@pytest.mark.parametrize("code", [301, 400, 401, 403, 404, 410, 422])
def test_permanent_statuses(code: int) -> None:
    r = classify(httpx.Response(code), b"nope")
    assert r.outcome is Outcome.PERMANENT
    assert r.error == f"HTTP {code} from the receiver"
    assert r.response_body == "nope"


def test_retry_after_seconds_and_date() -> None:
    assert parse_retry_after("120") == 120_000
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now=now) == 30_000
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None


def test_retry_after_is_read_from_a_429() -> None:
    r = classify(httpx.Response(429, headers={"Retry-After": "7"}), b"")
    assert r.retry_after_ms == 7_000


@pytest.mark.parametrize("value", ["\xc2\xb2", "\xe2\x91\xa0"])  # "²" and "①" in UTF-8: isdigit(), not int()
def test_a_429_with_a_unicode_digit_retry_after_is_transient_not_unsendable(value: str) -> None:
    # Found by hand: aiohttp decodes the header as UTF-8, "²".isdigit() is True and int("²")
    # raised ValueError inside the sender, which took it for a request it could not write: the
    # task failed at once as "unsendable request" instead of retrying a plain 429.
    async def go() -> AttemptResult:
        sender = AsyncHttpSender(PoolLimits())
        await sender.open()
        try:
            return await sender.send(WebhookRequest(url=rx.url("/hook"), content=b"{}"), 5)
        finally:
            await sender.close()

    with Receiver(default=Reply(status=429, headers={"Retry-After": value})) as rx:
        result = asyncio.run(go())
    assert result.outcome is Outcome.TRANSIENT and result.status_code == 429, result
    assert result.retry_after_ms is None and result.about_destination
    assert parse_retry_after("²") is None and parse_retry_after(" 3 ") == 3_000
