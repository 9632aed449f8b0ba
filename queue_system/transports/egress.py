"""The egress guard: which addresses a webhook may connect to, checked where the connection is made.

A URL's host is resolved once, every address is checked, and the connection goes to a checked address,
so a name that answers "public" to a submit-time check and "private" at connect time (DNS rebinding)
cannot slip through. The HTTP clients plug this in through `egress_httpx` (httpcore network backend)
and `egress_aiohttp` (aiohttp resolver and connector).

The default deny list is explicit (`egress_ranges`): IPv6 forms that carry an IPv4 are unwrapped and
the IPv4 is checked again, because `ipaddress.is_global` gets several of them wrong on Python 3.11.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from queue_system.transports.egress_ranges import (
    GLOBAL_UNICAST,
    IPV4_DENY,
    IPV6_DENY,
    IPAddress,
    IPNetwork,
    embedded_ipv4,
    first_match,
)

# A resolver answers the addresses (as text) a host name stands for; tests pass a stub.
AsyncResolver = Callable[[str, int], Awaitable[Sequence[str]]]
SyncResolver = Callable[[str, int], Sequence[str]]

# A last label that is all digits or 0x-hex makes the host an IPv4 attempt (WHATWG URL rules); then it
# must be a canonical dotted quad. `2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1` are refused, not guessed.
_NUMERIC_LABEL = re.compile(r"^(?:[0-9]+|0[xX][0-9a-fA-F]*)$")
NON_CANONICAL_IPV4 = "non-canonical IPv4 spelling"
MALFORMED_IPV6 = "malformed IPv6 literal"


class EgressBlocked(Exception):
    """A connection the egress policy refuses. Deliberately not an httpcore/aiohttp connection error:
    those are retried and reported as transient; this is permanent."""

    def __init__(self, host: str, address: str, range_name: str) -> None:
        super().__init__(f"egress blocked: {host} resolved to {address} ({range_name})")
        self.host = host
        self.address = address
        self.range = range_name


def parse_cidrs(text: str, variable: str) -> tuple[IPNetwork, ...]:
    """`10.0.0.0/8, ::1` -> networks; a bad entry is a ValueError naming the variable."""
    out: list[IPNetwork] = []
    for item in re.split(r"[,\s]+", text.strip()):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"{variable}: {item!r} is not a CIDR ({exc})") from None
    return tuple(out)


def parse_ports(text: str, variable: str = "EGRESS_ALLOW_PORTS") -> frozenset[int] | None:
    """`80,443,8000-8099` -> ports; empty text means any port (None)."""
    ports: set[int] = set()
    for item in re.split(r"[,\s]+", text.strip()):
        if not item:
            continue
        low, _, high = item.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise ValueError(f"{variable}: {item!r} is not a port or a range like 8000-8099") from None
        if not 1 <= first <= last <= 65535:
            raise ValueError(f"{variable}: {item!r} is outside 1-65535")
        ports.update(range(first, last + 1))
    return frozenset(ports) if ports else None


@dataclass(frozen=True)
class EgressPolicy:
    """Allow punches holes in the default deny list; deny adds to it (and wins over allow); ports,
    when set, restrict the destination port."""

    allow_cidrs: tuple[IPNetwork, ...] = ()
    deny_cidrs: tuple[IPNetwork, ...] = ()
    allow_ports: frozenset[int] | None = None

    @classmethod
    def from_strings(cls, allow: str = "", deny: str = "", ports: str = "") -> EgressPolicy:
        """From the EGRESS_ALLOW_CIDRS / EGRESS_DENY_CIDRS / EGRESS_ALLOW_PORTS values."""
        return cls(
            allow_cidrs=parse_cidrs(allow, "EGRESS_ALLOW_CIDRS"),
            deny_cidrs=parse_cidrs(deny, "EGRESS_DENY_CIDRS"),
            allow_ports=parse_ports(ports),
        )

    def check_ip(self, ip: IPAddress | str) -> str | None:
        """The name of the range that blocks `ip`, or None when it may be reached."""
        address = _strip_scope(ipaddress.ip_address(ip) if isinstance(ip, str) else ip)
        for network in self.deny_cidrs:
            if address.version == network.version and address in network:
                return f"EGRESS_DENY_CIDRS {network}"
        if any(address.version == n.version and address in n for n in self.allow_cidrs):
            return None
        if isinstance(address, ipaddress.IPv4Address):
            return first_match(address, IPV4_DENY)
        return self._check_ipv6(address)

    def check_port(self, port: int) -> str | None:
        if self.allow_ports is None or port in self.allow_ports:
            return None
        return f"port {port} not in EGRESS_ALLOW_PORTS"

    def check_host_port(self, host: str, port: int) -> str | None:
        """Submit-time check of a host as written: a blocked literal, an odd IPv4 spelling or a blocked
        port names its reason; a name (resolved only at connect time) and a public literal pass."""
        port_problem = self.check_port(port)
        if port_problem:
            return port_problem
        literal = ip_literal(host)
        if isinstance(literal, str):
            return literal
        if literal is None and _is_localhost(host):
            # RFC 6761: `localhost` is loopback by definition; say so at submit, not only at connect.
            literal = ipaddress.IPv4Address("127.0.0.1")
        return None if literal is None else self.check_ip(literal)

    def check_url_literal(self, url: str) -> str | None:
        """`check_host_port` for a URL; a URL without a usable host or port is refused too."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return "invalid URL"
        try:
            port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower(), 0)
        except ValueError:
            return "invalid port"
        host = parts.hostname or ""
        if not host:
            return "no host"
        if "%" in host and ":" not in host:
            return "percent-encoded host"
        return self.check_host_port(host, port)

    def _check_ipv6(self, address: ipaddress.IPv6Address) -> str | None:
        named = first_match(address, IPV6_DENY)
        if named:
            return named
        embedded = embedded_ipv4(address)
        if embedded:
            wrapper, inner = embedded
            for ipv4 in inner:
                problem = self.check_ip(ipv4)
                if problem:
                    return f"{wrapper} of {ipv4}: {problem}"
            return None
        if address not in GLOBAL_UNICAST:
            return "not global unicast (outside 2000::/3)"
        return None


def _strip_scope(address: IPAddress) -> IPAddress:
    # `fe80::1%eth0`: the zone changes nothing about where the address points.
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return ipaddress.IPv6Address(int(address))
    return address


def ip_literal(host: str) -> IPAddress | str | None:
    """An IP address when `host` is a literal; a reason (text) for a spelling we refuse to guess at
    (`NON_CANONICAL_IPV4`, `MALFORMED_IPV6`); None for a name."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in bare:
        try:
            return ipaddress.IPv6Address(bare)
        except ValueError:
            return MALFORMED_IPV6
    labels = bare.rstrip(".").split(".")
    if not _NUMERIC_LABEL.match(labels[-1]):
        return None
    try:
        return ipaddress.IPv4Address(bare.rstrip("."))
    except ValueError:
        return NON_CANONICAL_IPV4


def _is_localhost(host: str) -> bool:
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def _checked(host: str, port: int, answers: Iterable[str], policy: EgressPolicy) -> list[str]:
    addresses: list[str] = []
    for answer in answers:
        try:
            address = str(_strip_scope(ipaddress.ip_address(answer)))
        except ValueError:
            raise EgressBlocked(host, repr(answer), "not an IP address") from None
        problem = policy.check_ip(address)
        if problem:
            raise EgressBlocked(host, address, problem)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise EgressBlocked(host, "nothing", "no address")
    return addresses


def _precheck(host: str, port: int, policy: EgressPolicy) -> list[str] | None:
    """For a literal: its checked address. For a name: None (resolve it). Raises when blocked."""
    port_problem = policy.check_port(port)
    if port_problem:
        raise EgressBlocked(host, f"port {port}", port_problem)
    literal = ip_literal(host)
    if isinstance(literal, str):
        raise EgressBlocked(host, host, literal)
    if literal is None:
        return None
    return _checked(host, port, [str(literal)], policy)


async def resolve_checked(host: str, port: int, policy: EgressPolicy, resolver: AsyncResolver) -> list[str]:
    """Resolve `host` once; refuse (EgressBlocked) if any answer is blocked; return the checked
    addresses to connect to, in the resolver's order."""
    literal = _precheck(host, port, policy)
    if literal is not None:
        return literal
    return _checked(host, port, await resolver(host, port), policy)


def resolve_checked_sync(host: str, port: int, policy: EgressPolicy, resolver: SyncResolver) -> list[str]:
    """`resolve_checked` for blocking clients (the sync httpx.Client)."""
    literal = _precheck(host, port, policy)
    if literal is not None:
        return literal
    return _checked(host, port, resolver(host, port), policy)


def system_resolve(host: str, port: int) -> list[str]:
    """The operating system's answer (getaddrinfo), as address text."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]
