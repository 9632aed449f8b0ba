"""What an attempt's `error` says, produced for real through both senders (httpx, aiohttp) on
127.0.0.1: a refused port, a receiver that hangs past a short timeout, a TLS server whose
certificate is not valid, a receiver that closes the socket, a 503. Every wording is one that
docs/concepts/attempts-and-errors.md lists; the library's own text is kept as `detail`."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.slow_receiver import SlowReceiver
from queue_system.domain.models import AttemptResult, Outcome
from queue_system.domain.words import duration, plural
from queue_system.testing import free_port
from queue_system.transports.async_http import AsyncHttpSender, PoolLimits
from queue_system.transports.http import WebhookRequest, exchange
from tests.support import tls


def both(url: str, timeout_s: float) -> list[AttemptResult]:
    """The attempt through the sync sender (httpx) and the async one (aiohttp)."""

    async def run_async() -> AttemptResult:
        sender = AsyncHttpSender(PoolLimits())
        await sender.open()
        try:
            return await sender.send(WebhookRequest(url=url), timeout_s)
        finally:
            await sender.close()

    with httpx.Client() as client:
        sync = exchange(client, WebhookRequest(url=url), timeout_s)
    return [sync, asyncio.run(run_async())]


def _serve(handle: Callable[[socket.socket], None], wrap: ssl.SSLContext | None = None) -> Iterator[int]:
    """A one-thread TCP server on 127.0.0.1 calling `handle` per connection; yields its port."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                conn.settimeout(5)
                handle(wrap.wrap_socket(conn, server_side=True) if wrap else conn)
            except (OSError, ssl.SSLError):
                pass
            finally:
                conn.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        server.close()


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk


@pytest.fixture
def closing_port() -> Iterator[int]:
    """Reads the request, then closes the connection without a byte of answer."""
    yield from _serve(_read_request)


@pytest.fixture
def status_503_port() -> Iterator[int]:
    def answer(conn: socket.socket) -> None:
        _read_request(conn)
        conn.sendall(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy"
        )

    yield from _serve(answer)


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    folder: Path = tmp_path_factory.mktemp("tls")
    cert, key = tls.self_signed(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
def tls_port(self_signed: ssl.SSLContext) -> Iterator[int]:
    """A TLS server whose certificate no client trusts (self-signed, for another name)."""
    yield from _serve(_read_request, wrap=self_signed)


def test_a_refused_port_says_connection_refused() -> None:
    port = free_port()
    for result in both(f"http://127.0.0.1:{port}/x", 2.0):
        assert result.error == f"connection refused by 127.0.0.1:{port}", result
        assert result.outcome is Outcome.TRANSIENT and result.connect_failed
        assert result.detail and "refused" in result.detail.lower()  # the library's text, kept


def test_a_receiver_that_hangs_past_the_timeout_says_how_long_we_waited() -> None:
    with SlowReceiver(mode="hang") as rx:
        for result in both(rx.url(), 0.5):
            assert result.error == "timed out after 500 ms waiting for the response", result
            assert result.outcome is Outcome.TRANSIENT and not result.connect_failed
            assert result.detail


def test_a_certificate_not_valid_says_so_with_the_host(tls_port: int) -> None:
    for result in both(f"https://127.0.0.1:{tls_port}/x", 2.0):
        assert result.error is not None, result
        assert result.error.startswith("TLS certificate not valid for 127.0.0.1 ("), result
        assert "self-signed" in result.error or "self signed" in result.error
        assert result.outcome is Outcome.TRANSIENT and result.connect_failed
        assert result.detail and "certificate" in result.detail.lower()


def test_a_receiver_that_closes_the_socket_says_so(closing_port: int) -> None:
    for result in both(f"http://127.0.0.1:{closing_port}/x", 2.0):
        assert result.error == "connection closed by the receiver before an answer", result
        assert result.outcome is Outcome.TRANSIENT and not result.connect_failed
        assert result.detail


def test_a_503_says_who_answered(status_503_port: int) -> None:
    for result in both(f"http://127.0.0.1:{status_503_port}/x", 2.0):
        assert result.error == "HTTP 503 from the receiver", result
        assert result.outcome is Outcome.TRANSIENT and result.status_code == 503
        assert result.response_body == "busy"


def test_importing_the_api_does_not_load_aiohttp() -> None:
    """aiohttp is the worker's delivery engine: the API checks and stores webhooks without it."""
    code = (
        "import sys, queue_system.api.app; print(sorted(m for m in sys.modules if m.startswith('aiohttp')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(["task", "attempt", "host", "byte"]))
def test_plural_says_one_noun_for_one_and_the_plural_otherwise(n: int, noun: str) -> None:
    text = plural(n, noun)
    count, word = text.split(" ")
    assert int(count) == n
    assert word == (noun if n == 1 else noun + "s")


def test_plural_knows_irregular_nouns_and_an_override() -> None:
    assert plural(1, "retry") == "1 retry" and plural(2, "retry") == "2 retries"
    assert plural(3, "person", "people") == "3 people"


@given(st.integers(min_value=0, max_value=10**12))
def test_every_duration_has_a_unit(ms: int) -> None:
    number, unit = duration(ms).split(" ")
    assert unit in ("ms", "s", "min", "h", "d")
    assert float(number) >= 0
    scale = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}[unit]
    assert abs(float(number) * scale - ms) <= 0.05 * scale + 1  # rounded to one decimal of its unit
