"""Destinations: where a webhook goes, at two levels shared by every worker
(storage/lua/destinations.lua keeps them):

- the **host**, `scheme://host:port`: the unit of the concurrency cap (WEBHOOK_MAX_INFLIGHT_PER_HOST)
  and of a host breaker, fed by host-level facts only (DNS failure, connection refused, connect
  timeout, TLS failure): while it is open every endpoint of the host waits, the host itself is down;
- the **endpoint**, the webhook URL without its query (`scheme://host:port/path`), or
  `scheme://host:port#key` for a caller's `endpoint` key: the unit of the breaker fed by answers
  (5xx) and response timeouts, and of a bound on its own requests in flight
  (WEBHOOK_MAX_INFLIGHT_PER_ENDPOINT, at most the host's cap), so that one hanging endpoint cannot
  take every slot of a host that thousands of customers share.

Each breaker, at its own level:

    closed --(WEBHOOK_BREAKER_THRESHOLD failures of its level in a row)--> open
    open --(cool-down over: one task goes out as the probe)--> half_open
    half_open --(the probe gets an answer below 500)--> closed (its parked tasks are dispatched)
    half_open --(the probe fails or its worker is lost)--> open, for twice the cool-down (bounded)

An endpoint's probe is one of its own parked tasks (the oldest); a host's is any of its parked
tasks. A task whose host or endpoint is open, or at its bound, is parked under that level: it keeps
its status and attempt count and waits without a message until that level can take it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"  # one probe is under way


class WaitReason(StrEnum):
    OPEN = "open"  # the level's breaker is open (or half-open, its probe under way)
    BUSY = "busy"  # the level has as many requests in flight as its bound allows


class WaitLevel(StrEnum):
    HOST = "host"  # scheme://host:port: the host cap, or a host-level outage
    ENDPOINT = "endpoint"  # the endpoint's own bound, or its own breaker


class Signal(StrEnum):
    """What one attempt says about where it went (domain/breaker.py `breaker_signal`)."""

    UP = "up"  # an answer below 500: both levels are up
    ENDPOINT_DOWN = "endpoint"  # a 5xx or a response timeout: the host answered, the endpoint did not
    HOST_DOWN = "host"  # DNS, connection refused, connect timeout, TLS: the host is unreachable
    NONE = ""  # nothing: the request never went out (unsendable, refused on our side)


# An endpoint key a caller may give (`endpoint` in a webhook's payload).
ENDPOINT_KEY = re.compile(r"[A-Za-z0-9._~-]{1,200}")  # fullmatch
ENDPOINT_KEY_RULE = "1-200 characters of A-Z a-z 0-9 . _ ~ -"
_HOST_OF = re.compile(r"[^:/#]+://[^/#]+")


def host_of(endpoint: str) -> str:
    """`https://h:443/a/b` or `https://h:443#key` -> `https://h:443` (a host is its own host: a
    task stored before endpoints existed has its host as its endpoint). lua/destinations.lua's
    `host_of` is the same rule."""
    found = _HOST_OF.match(endpoint)
    return found.group(0) if found else endpoint


def keyed_endpoint(host: str, key: str) -> str:
    """The endpoint a caller's key names, scoped to its host: `https://h:443#customer-42`. A URL
    without its query and fragment never contains `#`, so no key spells a URL's endpoint."""
    return f"{host}#{key}"


@dataclass(frozen=True, slots=True)
class DestinationLimits:
    """The limits every worker applies to every destination (WEBHOOK_* settings)."""

    max_inflight: int = 256  # requests in flight to one host, across all workers
    breaker_threshold: int = 5  # failures of a level in a row that open its breaker
    cooldown_ms: int = 5_000  # the first cool-down; each failed probe doubles it
    max_cooldown_ms: int = 300_000
    # How long a parked task dispatched again holds the slot kept for it until its claim (a
    # lease's length: its message may wait behind a backlog; if it is lost, the slot frees itself).
    hold_ms: int = 15_000
    max_inflight_per_endpoint: int = 64  # requests in flight to one endpoint (<= max_inflight)

    @property
    def endpoint_cap(self) -> int:
        return min(self.max_inflight_per_endpoint, self.max_inflight)


@dataclass(frozen=True, slots=True)
class Waiting:
    """Why a parked task waits (GET /api/v1/tasks/{id} shows it)."""

    destination: str  # the host, scheme://host:port
    reason: WaitReason
    since: int  # epoch ms
    next_probe_at: int | None = None  # when an open level is tried again
    level: WaitLevel = WaitLevel.HOST
    endpoint: str | None = None


@dataclass(frozen=True, slots=True)
class Destination:
    """One host (`level` HOST) or one endpoint (ENDPOINT) and its breaker."""

    destination: str
    state: BreakerState
    in_flight: int
    failures: int  # failures of this level in a row
    parked: int  # tasks parked under this level
    next_probe_at: int | None  # epoch ms, while open
    cooldown_ms: int | None  # the current cool-down, while not closed
    last_error: str | None
    last_active_at: int  # epoch ms
    level: WaitLevel = WaitLevel.HOST


@dataclass(frozen=True, slots=True)
class DestinationReport:
    known: int  # hosts
    open: int  # hosts open or half-open
    parked: int  # tasks waiting for a host or an endpoint, in all
    destinations: list[Destination]  # hosts
    endpoints: list[Destination] = field(default_factory=list)
    known_endpoints: int = 0
    open_endpoints: int = 0
