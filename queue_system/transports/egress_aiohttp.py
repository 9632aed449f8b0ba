"""The egress guard for aiohttp (the async delivery engine): a resolver and a connector.

`GuardedResolver` resolves a name once and refuses if any answer is blocked; aiohttp then connects to
those very addresses, with TLS verified against the host name. aiohttp never asks the resolver about
an IP literal, so `GuardedConnector` checks whatever `_resolve_host` returns as well (literals, cached
answers, every redirect hop). Use both: `GuardedConnector(policy)` builds its own `GuardedResolver`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.tracing import Trace

from queue_system.transports.egress import (
    AsyncResolver,
    EgressBlocked,
    EgressPolicy,
    resolve_checked,
)


async def loop_resolve(host: str, port: int) -> list[str]:
    """The operating system's answer through the running loop's getaddrinfo (a thread)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that answers only checked addresses (EgressBlocked otherwise)."""

    def __init__(self, policy: EgressPolicy, resolver: AsyncResolver = loop_resolve) -> None:
        self._policy = policy
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await resolve_checked(host, port, self._policy, self._resolver)
        results: list[ResolveResult] = []
        for address in addresses:
            found = socket.AF_INET6 if ":" in address else socket.AF_INET
            if family in (socket.AF_UNSPEC, found):
                results.append(
                    {"hostname": host, "host": address, "port": port, "family": found, "proto": 0, "flags": 0}
                )
        if not results:
            raise OSError(f"{host} has no checked address of family {family!r}")
        return results

    async def close(self) -> None:
        return None


class GuardedConnector(aiohttp.TCPConnector):
    """`aiohttp.TCPConnector` that connects only where the policy allows."""

    def __init__(self, policy: EgressPolicy, resolver: AsyncResolver = loop_resolve, **kwargs: Any) -> None:
        super().__init__(resolver=GuardedResolver(policy, resolver), **kwargs)
        self._egress_policy = policy

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[Trace] | None = None
    ) -> list[ResolveResult]:
        results = await super()._resolve_host(host, port, traces)
        problem = self._egress_policy.check_port(port)
        if problem:
            raise EgressBlocked(host, f"port {port}", problem)
        for result in results:
            problem = self._egress_policy.check_ip(result["host"])
            if problem:
                raise EgressBlocked(host, result["host"], problem)
        return results
