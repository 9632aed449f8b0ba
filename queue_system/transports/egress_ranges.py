"""The address ranges the egress guard refuses by default, and the IPv6 forms that carry an IPv4.

Explicit on purpose: on Python 3.11.7 `ipaddress.is_global` is True for the NAT64, 6to4,
IPv4-compatible and IPv4-translated forms of private addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_N = ipaddress.ip_network

# (name, network): the first match names the range in the error. Order matters where ranges nest.
IPV4_DENY: tuple[tuple[str, IPNetwork], ...] = (
    ("this network", _N("0.0.0.0/8")),
    ("private", _N("10.0.0.0/8")),
    ("shared address space (CGNAT)", _N("100.64.0.0/10")),
    ("loopback", _N("127.0.0.0/8")),
    ("link-local (cloud metadata)", _N("169.254.0.0/16")),
    ("private", _N("172.16.0.0/12")),
    ("IETF protocol assignments", _N("192.0.0.0/24")),
    ("documentation", _N("192.0.2.0/24")),
    ("6to4 relay anycast", _N("192.88.99.0/24")),
    ("private", _N("192.168.0.0/16")),
    ("benchmarking", _N("198.18.0.0/15")),
    ("documentation", _N("198.51.100.0/24")),
    ("documentation", _N("203.0.113.0/24")),
    ("multicast", _N("224.0.0.0/4")),
    ("broadcast", _N("255.255.255.255/32")),
    ("reserved", _N("240.0.0.0/4")),
)

IPV6_DENY: tuple[tuple[str, IPNetwork], ...] = (
    ("unspecified", _N("::/128")),
    ("loopback", _N("::1/128")),
    # RFC 8215 local-use NAT64: meant for one network, never global, and its embedding depends on a
    # prefix length only the operator knows, so it is refused whole rather than unwrapped.
    ("NAT64 local-use", _N("64:ff9b:1::/48")),
    ("discard-only", _N("100::/64")),
    ("benchmarking", _N("2001:2::/48")),
    ("documentation", _N("2001:db8::/32")),
    ("documentation", _N("3fff::/20")),
    ("unique local", _N("fc00::/7")),
    ("link-local", _N("fe80::/10")),
    ("site-local (deprecated)", _N("fec0::/10")),
    ("multicast", _N("ff00::/8")),
)

_MAPPED = _N("::ffff:0:0/96")
_TRANSLATED = _N("::ffff:0:0:0/96")
_COMPATIBLE = _N("::/96")
_NAT64 = _N("64:ff9b::/96")
_SIXTOFOUR = _N("2002::/16")
_TEREDO = _N("2001::/32")
GLOBAL_UNICAST = _N("2000::/3")


def first_match(address: IPAddress, table: Iterable[tuple[str, IPNetwork]]) -> str | None:
    for name, network in table:
        if address.version == network.version and address in network:
            return f"{name} {network}"
    return None


def embedded_ipv4(
    address: ipaddress.IPv6Address,
) -> tuple[str, tuple[ipaddress.IPv4Address, ...]] | None:
    """The IPv4 address(es) an IPv6 form carries, with the form's name; None for a plain IPv6."""
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _MAPPED:
        return "IPv4-mapped", (low32,)
    if address in _TRANSLATED:
        return "IPv4-translated", (low32,)
    if address in _COMPATIBLE:
        return "IPv4-compatible", (low32,)
    if address in _NAT64:
        return "NAT64", (low32,)
    if address in _SIXTOFOUR:
        return "6to4", (ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF),)
    if address in _TEREDO:
        # Teredo carries the server and the (bit-inverted) client address; both must be allowed.
        server = ipaddress.IPv4Address((int(address) >> 64) & 0xFFFFFFFF)
        client = ipaddress.IPv4Address(~int(address) & 0xFFFFFFFF)
        return "Teredo", (server, client)
    return None
