"""Which breaker an attempt's failure counts against (domain/destinations.py): both senders, real
sockets on 127.0.0.1. A host that cannot be reached (refused, connect timeout, TLS failure) is the
host's; an answer (5xx) or a response that never comes is the endpoint's."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import httpx
import pytest

from bench.slow_receiver import SlowReceiver
from queue_system.domain.breaker import breaker_signal
from queue_system.domain.destinations import Signal
from queue_system.domain.models import AttemptResult, Outcome
from queue_system.testing import free_port
from queue_system.transports.async_http import AsyncHttpSender, PoolLimits
from queue_system.transports.http import WebhookRequest, exchange


def both(url: str, timeout_s: float) -> list[AttemptResult]:
    """The attempt through the sync sender (httpx) and the async one (aiohttp)."""

    async def run_async() -> AttemptResult:
        sender = AsyncHttpSender(PoolLimits())
        await sender.open()
        try:
            return await sender.exchange(sender._session, WebhookRequest(url=url), timeout_s)  # type: ignore[arg-type]
        finally:
            await sender.close()

    with httpx.Client() as client:
        sync = exchange(client, WebhookRequest(url=url), timeout_s)
    return [sync, asyncio.run(run_async())]


@pytest.fixture
def stuck_port() -> Iterator[int]:
    """A port whose accept queue is full: a new connection's SYN is never answered (a connect
    timeout, as from a host that drops packets)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):  # fill the backlog (never accepted)
        c = socket.socket()
        c.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            c.connect(("127.0.0.1", port))
        fillers.append(c)
    try:
        yield port
    finally:
        for c in fillers:
            c.close()
        server.close()


def test_a_refused_connection_is_the_hosts() -> None:
    for result in both(f"http://127.0.0.1:{free_port()}/x", 2.0):
        assert result.outcome is Outcome.TRANSIENT and result.connect_failed, result
        assert breaker_signal(result) is Signal.HOST_DOWN


def test_a_tls_failure_is_the_hosts() -> None:
    with SlowReceiver() as rx:  # plain HTTP: a TLS handshake with it fails
        for result in both(f"https://127.0.0.1:{rx.port}/x", 2.0):
            assert result.outcome is Outcome.TRANSIENT and result.connect_failed, result
            assert breaker_signal(result) is Signal.HOST_DOWN


def test_a_connect_timeout_is_the_hosts(stuck_port: int) -> None:
    for result in both(f"http://127.0.0.1:{stuck_port}/x", 0.5):
        assert result.outcome is Outcome.TRANSIENT and result.connect_failed, result
        assert result.error and "connect timeout" in result.error
        assert breaker_signal(result) is Signal.HOST_DOWN


def test_a_response_timeout_and_a_5xx_are_the_endpoints() -> None:
    with SlowReceiver(mode="hang") as rx:
        for result in both(rx.url("/hangs"), 0.5):
            assert result.outcome is Outcome.TRANSIENT and not result.connect_failed, result
            assert breaker_signal(result) is Signal.ENDPOINT_DOWN
    with SlowReceiver(status=500) as rx:
        for result in both(rx.url("/fails"), 2.0):
            assert result.status_code == 500 and not result.connect_failed, result
            assert breaker_signal(result) is Signal.ENDPOINT_DOWN
