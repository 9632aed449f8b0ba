"""The egress guard inside real clients (sync httpx through the httpcore backend, aiohttp through the
resolver and connector) against real servers on 127.0.0.1. Names resolve through a stub that answers
what the test says, so a request that succeeds for `hook.test` proves the connection went to the
checked address (nothing else could resolve that name); 127.0.0.0/8 is allowed only where a test
needs to reach its receiver."""

from __future__ import annotations

import asyncio
import http.server
import ssl
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from queue_system.transports.egress import EgressBlocked, EgressPolicy
from queue_system.transports.egress_aiohttp import GuardedConnector, GuardedResolver
from queue_system.transports.egress_httpx import GuardedHTTPTransport
from tests.support import tls
from tests.support.receiver import Receiver, Reply

LOCAL = EgressPolicy.from_strings(allow="127.0.0.0/8")


class StubDNS:
    """Answers per name from a table; a list of answers is consumed one per lookup (rebinding)."""

    def __init__(self, table: dict[str, list[list[str]]]) -> None:
        self.table = table
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append(host)
        answers = self.table[host]
        return answers.pop(0) if len(answers) > 1 else answers[0]

    async def resolve(self, host: str, port: int) -> Sequence[str]:
        return self(host, port)


def sync_client(policy: EgressPolicy, dns: StubDNS, **kwargs: Any) -> httpx.Client:
    return httpx.Client(transport=GuardedHTTPTransport(policy, dns, **kwargs), timeout=5)


# -- sync httpx -------------------------------------------------------------------------------------


def test_httpx_connects_to_the_checked_address_with_the_name_as_host() -> None:
    dns = StubDNS({"hook.test": [["127.0.0.1"]]})
    with Receiver() as rx, sync_client(LOCAL, dns) as client:
        response = client.post(f"http://hook.test:{rx.port}/hook", content=b"{}")
        assert response.status_code == 200
        assert rx.requests[0].headers["host"] == f"hook.test:{rx.port}"
    assert dns.calls == ["hook.test"]


@pytest.mark.parametrize("answer", ["10.0.0.1", "169.254.169.254", "::1", "::ffff:127.0.0.1"])
def test_httpx_name_resolving_to_blocked_address_is_refused(answer: str) -> None:
    dns = StubDNS({"evil.test": [[answer]]})
    with Receiver() as rx, sync_client(EgressPolicy(), dns) as client:
        with pytest.raises(EgressBlocked, match=r"egress blocked: evil.test resolved to"):
            client.get(f"http://evil.test:{rx.port}/")
        assert rx.count == 0


def test_httpx_literal_loopback_is_refused_by_default_and_allowed_when_opened() -> None:
    with Receiver() as rx:
        with (
            sync_client(EgressPolicy(), StubDNS({})) as client,
            pytest.raises(EgressBlocked, match="loopback"),
        ):
            client.get(rx.url())
        assert rx.count == 0
        with sync_client(LOCAL, StubDNS({})) as client:
            assert client.get(rx.url()).status_code == 200
        assert rx.count == 1


@pytest.mark.parametrize("url", ["http://[::1]:9/", "http://[::ffff:7f00:1]:9/", "http://0x7f.1:9/"])
def test_httpx_blocked_literals_never_connect(url: str) -> None:
    dns = StubDNS({})
    with sync_client(EgressPolicy(), dns) as client, pytest.raises(EgressBlocked):
        client.get(url)
    assert dns.calls == []


def test_httpx_rebinding_second_connection_is_refused() -> None:
    """First answer passes (127/8 is opened here), the second is private: each new connection
    resolves and checks again, so the second request never leaves."""
    dns = StubDNS({"rebind.test": [["127.0.0.1"], ["10.0.0.1"]]})
    with Receiver() as rx, sync_client(LOCAL, dns) as client:
        assert client.get(f"http://rebind.test:{rx.port}/").status_code == 200
        # The receiver speaks HTTP/1.0 and closes: the next request needs a new connection.
        with pytest.raises(EgressBlocked, match=r"rebind\.test resolved to 10\.0\.0\.1"):
            client.get(f"http://rebind.test:{rx.port}/")
        assert rx.count == 1


@pytest.mark.parametrize("target", ["http://internal.test/", "http://169.254.169.254/latest/meta-data/"])
def test_httpx_redirect_hop_to_a_blocked_host_is_refused(target: str) -> None:
    dns = StubDNS({"hook.test": [["127.0.0.1"]], "internal.test": [["10.0.0.1"]]})
    policy = EgressPolicy.from_strings(allow="127.0.0.1/32")
    with Receiver(default=Reply(status=302, headers={"Location": target})) as rx:
        with sync_client(policy, dns) as client, pytest.raises(EgressBlocked):
            client.get(f"http://hook.test:{rx.port}/", follow_redirects=True)
        assert rx.count == 1


def test_httpx_ports_and_deny_list() -> None:
    with Receiver() as rx:
        ports = EgressPolicy.from_strings(allow="127.0.0.0/8", ports="443")
        with (
            sync_client(ports, StubDNS({})) as client,
            pytest.raises(EgressBlocked, match="EGRESS_ALLOW_PORTS"),
        ):
            client.get(rx.url())
        denied = EgressPolicy.from_strings(allow="127.0.0.0/8", deny="127.0.0.1/32")
        with sync_client(denied, StubDNS({})) as client, pytest.raises(EgressBlocked, match="EGRESS_DENY"):
            client.get(rx.url())
        assert rx.count == 0


# -- TLS: verified against the host name, not the address we connect to ------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, ssl.SSLContext]]:
    """An HTTPS server on 127.0.0.1 whose certificate names only `hook.test`; and a client context
    that trusts it."""
    folder: Path = tmp_path_factory.mktemp("tls")
    cert, key = tls.self_signed(folder)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    server.socket = server_ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1]), ssl.create_default_context(cafile=str(cert))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_httpx_tls_is_verified_against_the_host_name(tls_server: tuple[int, ssl.SSLContext]) -> None:
    port, trust = tls_server
    dns = StubDNS({"hook.test": [["127.0.0.1"]], "other.test": [["127.0.0.1"]]})
    with sync_client(LOCAL, dns, verify=trust) as client:
        assert client.get(f"https://hook.test:{port}/").text == "ok"
        with pytest.raises(httpx.ConnectError, match="certificate verify failed"):
            client.get(f"https://other.test:{port}/")


def test_aiohttp_tls_is_verified_against_the_host_name(tls_server: tuple[int, ssl.SSLContext]) -> None:
    port, trust = tls_server
    dns = StubDNS({"hook.test": [["127.0.0.1"]], "other.test": [["127.0.0.1"]]})

    async def go() -> None:
        async with aiohttp.ClientSession(connector=GuardedConnector(LOCAL, dns.resolve, ssl=trust)) as s:
            async with s.get(f"https://hook.test:{port}/") as response:
                assert await response.text() == "ok"
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await s.get(f"https://other.test:{port}/")

    asyncio.run(go())


# -- aiohttp ----------------------------------------------------------------------------------------


async def _aiohttp_get(policy: EgressPolicy, dns: StubDNS, url: str, **kwargs: Any) -> int:
    connector = GuardedConnector(policy, dns.resolve, use_dns_cache=False)
    async with aiohttp.ClientSession(connector=connector) as session, session.get(url, **kwargs) as response:
        await response.read()
        return response.status


def test_aiohttp_connects_to_the_checked_address() -> None:
    dns = StubDNS({"hook.test": [["127.0.0.1"]]})
    with Receiver() as rx:
        assert asyncio.run(_aiohttp_get(LOCAL, dns, f"http://hook.test:{rx.port}/hook")) == 200
        assert rx.requests[0].headers["host"] == f"hook.test:{rx.port}"
    assert dns.calls == ["hook.test"]


@pytest.mark.parametrize(
    ("host", "answer"),
    [
        ("evil.test", "10.0.0.1"),
        ("evil.test", "fd00::1"),
        ("127.0.0.1", None),
        ("[::1]", None),
        ("0x7f.1", None),
    ],
)
def test_aiohttp_blocked_names_and_literals_are_refused(host: str, answer: str | None) -> None:
    dns = StubDNS({"evil.test": [[answer or ""]]})
    with Receiver() as rx:
        with pytest.raises(EgressBlocked, match="egress blocked"):
            asyncio.run(_aiohttp_get(EgressPolicy(), dns, f"http://{host}:{rx.port}/"))
        assert rx.count == 0


def test_aiohttp_rebinding_and_redirect_hops() -> None:
    dns = StubDNS({"rebind.test": [["127.0.0.1"], ["10.0.0.1"]], "internal.test": [["192.168.0.1"]]})
    with Receiver(
        script=[200], default=Reply(status=302, headers={"Location": "http://internal.test/"})
    ) as rx:
        url = f"http://rebind.test:{rx.port}/"
        assert asyncio.run(_aiohttp_get(LOCAL, dns, url)) == 200
        with pytest.raises(EgressBlocked, match=r"rebind\.test resolved to 10\.0\.0\.1"):
            asyncio.run(_aiohttp_get(LOCAL, dns, url))
        with pytest.raises(EgressBlocked, match=r"internal\.test resolved to 192\.168\.0\.1"):
            asyncio.run(_aiohttp_get(LOCAL, dns, f"http://127.0.0.1:{rx.port}/", allow_redirects=True))
        assert rx.count == 2


def test_aiohttp_resolver_alone_filters_by_family() -> None:
    async def go() -> None:
        async def stub(host: str, port: int) -> Sequence[str]:
            return ["8.8.8.8", "2606:4700:4700::1111"]

        resolver = GuardedResolver(EgressPolicy(), stub)
        v4 = await resolver.resolve("dns.test", 443)
        assert [r["host"] for r in v4] == ["8.8.8.8"]
        both = await resolver.resolve("dns.test", 443, family=0)  # type: ignore[arg-type]
        assert [r["host"] for r in both] == ["8.8.8.8", "2606:4700:4700::1111"]
        await resolver.close()

    asyncio.run(go())


def test_aiohttp_default_dns_cache_and_concurrent_lookups_stay_blocked() -> None:
    """The delivery engine keeps aiohttp's DNS cache on: concurrent and repeated requests for a
    blocked name all fail with EgressBlocked (shared lookups do not turn it into another error)."""
    dns = StubDNS({"evil.test": [["10.0.0.1"]]})

    async def go() -> list[BaseException | None]:
        async with aiohttp.ClientSession(connector=GuardedConnector(EgressPolicy(), dns.resolve)) as session:

            async def one() -> None:
                async with session.get("http://evil.test:9/"):
                    pass

            return await asyncio.gather(*(one() for _ in range(5)), return_exceptions=True)

    outcomes = asyncio.run(go())
    assert all(isinstance(outcome, EgressBlocked) for outcome in outcomes), outcomes
