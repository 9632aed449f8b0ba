"""The async sender (aiohttp) behind `egress_connector(settings)`: what the delivery engine plugs in.
A stub resolver answers what the test says; the receivers are real, on 127.0.0.1."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence

from queue_system.config.settings import load_settings
from queue_system.domain.models import Outcome
from queue_system.kinds.webhook_security import egress_connector
from queue_system.transports.async_http import AsyncHttpSender, PoolLimits, WebhookRequest
from tests.support.receiver import Receiver, Reply

METADATA = "(link-local (cloud metadata) 169.254.0.0/16)"
DNS = {"hook.test": "127.0.0.1", "meta.test": "169.254.169.254"}


async def stub(host: str, port: int) -> Sequence[str]:
    return [DNS[host]]


def send(
    url: str, *, follow: bool = False, allow: str = "127.0.0.0/8"
) -> tuple[Outcome, str | None, str | None]:
    settings = load_settings({"EGRESS_ALLOW_CIDRS": allow})

    async def go() -> tuple[Outcome, str | None, str | None]:
        sender = AsyncHttpSender(
            PoolLimits(),
            connector_factory=functools.partial(egress_connector, settings, resolver=stub),
            follow_redirects=follow,
        )
        await sender.open()
        try:
            result = await sender.send(WebhookRequest(url=url, content=b"{}"), 5)
        finally:
            await sender.close()
        return result.outcome, result.error, result.response_body

    return asyncio.run(go())


def test_a_name_resolving_to_a_blocked_address_is_permanent() -> None:
    outcome, error, _ = send("http://meta.test/latest/meta-data/")
    assert outcome is Outcome.PERMANENT
    assert error == "egress blocked: meta.test resolved to 169.254.169.254 " + METADATA


def test_a_blocked_literal_and_loopback_without_the_allow_list() -> None:
    assert send("http://10.0.0.1/")[1] == "egress blocked: 10.0.0.1 resolved to 10.0.0.1 (private 10.0.0.0/8)"
    with Receiver() as rx:
        assert send(rx.url("/"), allow="")[0] is Outcome.PERMANENT
        assert send(f"http://hook.test:{rx.port}/")[0] is Outcome.SUCCESS
        assert len(rx.requests) == 1


def test_redirect_hops_are_checked_and_off_by_default() -> None:
    with Receiver(default=Reply(302, {"Location": "http://meta.test/"})) as rx:
        outcome, error, _ = send(f"http://hook.test:{rx.port}/", follow=True)
        assert outcome is Outcome.PERMANENT and error and "meta.test resolved to 169.254.169.254" in error
        outcome, error, _ = send(f"http://hook.test:{rx.port}/")
        assert outcome is Outcome.PERMANENT and error == "HTTP 302 from the receiver"


def test_a_binary_response_is_a_marker() -> None:
    with Receiver(default=Reply(200, {"Content-Type": "application/pdf"}, b"%PDF" + bytes(96))) as rx:
        assert send(f"http://hook.test:{rx.port}/")[2] == "<binary: 100 bytes, application/pdf>"
