"""The egress policy as pure functions: every blocked class as a literal and as a name (a stub resolver
answers what the test says), the allow/deny lists, ports, odd spellings, rebinding."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence

import pytest

from queue_system.transports.egress import (
    EgressBlocked,
    EgressPolicy,
    parse_ports,
    resolve_checked,
    resolve_checked_sync,
)

DEFAULT = EgressPolicy()

BLOCKED = [
    ("0.0.0.0", "this network"),
    ("0.1.2.3", "this network"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.254", "CGNAT"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("169.254.169.254", "link-local"),
    ("192.0.0.8", "IETF"),
    ("192.0.2.1", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.1", "benchmarking"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("2001:2::5", "benchmarking"),
    ("100::1", "discard"),
    ("fec0::1", "site-local"),
    ("::ffff:127.0.0.1", "IPv4-mapped of 127.0.0.1: loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped of 169.254.169.254"),
    ("::ffff:0:10.0.0.1", "IPv4-translated of 10.0.0.1: private"),
    ("::10.0.0.1", "IPv4-compatible of 10.0.0.1: private"),
    ("::127.0.0.1", "IPv4-compatible of 127.0.0.1: loopback"),
    ("64:ff9b::10.0.0.1", "NAT64 of 10.0.0.1: private"),
    ("64:ff9b::169.254.169.254", "NAT64 of 169.254.169.254"),
    ("64:ff9b:1::8.8.8.8", "NAT64 local-use"),
    ("2002:a00:1::", "6to4 of 10.0.0.1: private"),
    ("2002:7f00:1::1", "6to4 of 127.0.0.1: loopback"),
    # Teredo: server 65.54.227.120, client ~0x3ffffdd2 = 192.0.2.45 (documentation)
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo of 192.0.2.45"),
    ("4000::1", "not global unicast"),
]

ALLOWED = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1"]


@pytest.mark.parametrize(("address", "fragment"), BLOCKED)
def test_blocked_literal_names_its_range(address: str, fragment: str) -> None:
    problem = DEFAULT.check_ip(address)
    assert problem is not None and fragment in problem
    host = f"[{address.replace('%', '%25')}]" if ":" in address else address
    literal = DEFAULT.check_url_literal(f"http://{host}:8080/hook")
    assert literal is not None and fragment in literal


@pytest.mark.parametrize(("address", "fragment"), BLOCKED)
def test_blocked_as_a_name_is_refused_at_resolution(address: str, fragment: str) -> None:
    assert DEFAULT.check_url_literal("https://hooks.example.test/x") is None  # names pass at submit
    with pytest.raises(EgressBlocked) as info:
        resolve_checked_sync("hooks.example.test", 443, DEFAULT, lambda h, p: [address])
    assert fragment in info.value.range
    assert info.value.host == "hooks.example.test"
    assert str(info.value) == (
        f"egress blocked: hooks.example.test resolved to {info.value.address} ({info.value.range})"
    )


def test_python_is_global_is_wrong_where_we_are_not() -> None:
    """The reason for the explicit list: these forms of 10.0.0.1 look global to Python 3.11.7."""
    for form in ("64:ff9b::a00:1", "2002:a00:1::", "::ffff:0:a00:1"):
        assert DEFAULT.check_ip(form) is not None, form


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_pass(address: str) -> None:
    assert DEFAULT.check_ip(address) is None
    assert resolve_checked_sync("ok.test", 443, DEFAULT, lambda h, p: [address]) == [
        str(ipaddress.ip_address(address))
    ]


@pytest.mark.parametrize(
    "host", ["2130706433", "0x7f.1", "0x7f000001", "0177.0.0.1", "127.1", "127.0.1", "1.2.3.4.5", "0x"]
)
def test_odd_ipv4_spellings_are_refused_not_guessed(host: str) -> None:
    assert DEFAULT.check_url_literal(f"http://{host}/") == "non-canonical IPv4 spelling"
    never_called: list[str] = []
    with pytest.raises(EgressBlocked, match="non-canonical IPv4 spelling"):
        resolve_checked_sync(host, 80, DEFAULT, lambda h, p: never_called or ["8.8.8.8"])


def test_any_blocked_answer_refuses_the_whole_name() -> None:
    with pytest.raises(EgressBlocked) as info:
        resolve_checked_sync("mixed.test", 443, DEFAULT, lambda h, p: ["8.8.8.8", "10.1.2.3"])
    assert info.value.address == "10.1.2.3"


def test_rebinding_each_resolution_is_checked_and_used() -> None:
    """First answer public, second private: the address returned is the one checked, and the second
    resolution (a new connection) is refused rather than trusted from the first."""
    answers = iter([["93.184.216.34"], ["10.0.0.1"]])
    calls: list[str] = []

    def rebinding(host: str, port: int) -> Sequence[str]:
        calls.append(host)
        return next(answers)

    assert resolve_checked_sync("rebind.test", 443, DEFAULT, rebinding) == ["93.184.216.34"]
    with pytest.raises(EgressBlocked, match=r"rebind.test resolved to 10.0.0.1 \(private"):
        resolve_checked_sync("rebind.test", 443, DEFAULT, rebinding)
    assert calls == ["rebind.test", "rebind.test"]  # once per check, never twice


def test_async_resolve_checked_resolves_once() -> None:
    calls: list[tuple[str, int]] = []

    async def stub(host: str, port: int) -> Sequence[str]:
        calls.append((host, port))
        return ["8.8.8.8", "8.8.8.8", "2606:4700:4700::1111"]

    got = asyncio.run(resolve_checked("dns.test", 443, DEFAULT, stub))
    assert got == ["8.8.8.8", "2606:4700:4700::1111"]
    assert calls == [("dns.test", 443)]
    with pytest.raises(EgressBlocked, match="loopback"):
        asyncio.run(resolve_checked("[::1]", 443, DEFAULT, stub))
    assert len(calls) == 1  # a literal is never resolved


def test_allow_punches_a_hole_and_deny_adds_and_wins() -> None:
    policy = EgressPolicy.from_strings(allow="127.0.0.0/8, 10.1.0.0/16", deny="8.8.8.0/24 10.1.2.0/24")
    assert policy.check_ip("127.0.0.1") is None
    assert policy.check_ip("::ffff:127.0.0.1") is None  # the unwrapped IPv4 is allowed too
    assert policy.check_ip("10.1.9.9") is None
    assert policy.check_ip("10.2.0.1") == "private 10.0.0.0/8"  # the rest of the range stays shut
    assert policy.check_ip("10.1.2.3") == "EGRESS_DENY_CIDRS 10.1.2.0/24"
    assert policy.check_ip("8.8.8.8") == "EGRESS_DENY_CIDRS 8.8.8.0/24"
    assert policy.check_ip("::ffff:8.8.8.8") is not None  # a wrapped form does not dodge the deny
    assert policy.check_ip("169.254.169.254") is not None
    assert EgressPolicy.from_strings(allow="").check_ip("127.0.0.1") is not None  # empty: nothing extra


def test_ports_restrict() -> None:
    policy = EgressPolicy.from_strings(ports="443, 8000-8001")
    assert policy.check_url_literal("https://8.8.8.8/") is None
    assert policy.check_url_literal("http://8.8.8.8:8001/") is None
    assert policy.check_url_literal("http://8.8.8.8/") == "port 80 not in EGRESS_ALLOW_PORTS"
    with pytest.raises(EgressBlocked, match="port 22 not in EGRESS_ALLOW_PORTS"):
        resolve_checked_sync("ssh.test", 22, policy, lambda h, p: ["8.8.8.8"])
    assert parse_ports("") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"allow": "10.0.0.0/33"}, "EGRESS_ALLOW_CIDRS"),
        ({"deny": "nope"}, "EGRESS_DENY_CIDRS"),
        ({"ports": "http"}, "EGRESS_ALLOW_PORTS"),
        ({"ports": "0"}, "outside 1-65535"),
        ({"ports": "9-8"}, "outside 1-65535"),
    ],
)
def test_bad_settings_name_the_variable(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EgressPolicy.from_strings(**kwargs)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://[::1/", "invalid URL"),
        ("http://8.8.8.8:99999/", "invalid port"),
        ("http:///nohost", "no host"),
        ("http://%31%32%37.0.0.1/", "percent-encoded host"),
        ("http://[fe80::zz]/", "invalid"),
    ],
)
def test_unusable_urls_are_refused(url: str, problem: str) -> None:
    got = DEFAULT.check_url_literal(url)
    assert got is not None and problem in got


def test_egress_blocked_is_not_a_connection_error() -> None:
    import aiohttp
    import httpcore
    import httpx

    for base in (httpcore.ConnectError, httpx.TransportError, aiohttp.ClientError, OSError):
        assert not issubclass(EgressBlocked, base)


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "api.localhost"])
def test_localhost_is_loopback_at_submit(host: str) -> None:
    assert DEFAULT.check_url_literal(f"http://{host}:8080/") == "loopback 127.0.0.0/8"
    assert EgressPolicy.from_strings(allow="127.0.0.0/8").check_url_literal(f"http://{host}/") is None


def test_a_resolver_answer_that_is_not_an_address_is_refused() -> None:
    with pytest.raises(EgressBlocked, match="not an IP address"):
        resolve_checked_sync("odd.test", 443, DEFAULT, lambda h, p: ["127.000.000.001"])
