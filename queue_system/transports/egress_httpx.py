"""The egress guard for the sync `httpx.Client`: an httpcore network backend behind a transport we own.

httpx has no public hook for a network backend (encode/httpx#3749), so `GuardedHTTPTransport` builds
httpx's own `HTTPTransport` and swaps its connection pool for one with `GuardedBackend`; pinned to
httpx 0.28 / httpcore 1.0 and covered by tests that connect for real. The backend resolves the host
once, refuses if any address is blocked, and connects to a checked address. httpcore then starts TLS
with `server_hostname` = the URL's host, so certificates are still verified against the name.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable

import httpcore
import httpx

from queue_system.transports.egress import EgressPolicy, SyncResolver, resolve_checked_sync, system_resolve

SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's sync backend, connecting only to addresses the policy allows."""

    def __init__(self, policy: EgressPolicy, resolver: SyncResolver = system_resolve) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = resolve_checked_sync(host, port, self._policy, self._resolver)
        options = list(socket_options or ())
        error: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        # Like socket.create_connection: the first checked address that answers wins.
        for address in addresses:
            try:
                return self._inner.connect_tcp(address, port, timeout, local_address, options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None  # resolve_checked_sync never returns an empty list
        raise error

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("egress guard: unix sockets are not a webhook destination")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedHTTPTransport(httpx.HTTPTransport):
    """`httpx.HTTPTransport` whose every connection (each redirect hop included: httpx opens them
    through the same transport) passes the egress policy. No proxy: a proxy would resolve for us."""

    def __init__(
        self,
        policy: EgressPolicy,
        resolver: SyncResolver = system_resolve,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),  # noqa: B008
        http2: bool = False,
    ) -> None:
        super().__init__(verify=verify, limits=limits, http2=http2)
        ssl_context = httpx.create_ssl_context(verify=verify)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=http2,
            network_backend=GuardedBackend(policy, resolver),
        )
