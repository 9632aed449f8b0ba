"""Destinations: where a webhook goes (`scheme://host:port`), the unit of the per-destination cap
and of the circuit breaker shared by every worker (storage/lua/destinations.lua keeps them).

    closed --(WEBHOOK_BREAKER_THRESHOLD transient failures in a row)--> open
    open --(cool-down over: one task goes out as the probe)--> half_open
    half_open --(the probe gets an answer below 500)--> closed (its parked tasks are dispatched)
    half_open --(the probe fails or its worker is lost)--> open, for twice the cool-down (bounded)

A task for an open destination, or one with all its slots in use, is parked: it keeps its status
and attempt count and waits without a message until the destination can take it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"  # one probe is under way


class WaitReason(StrEnum):
    OPEN = "open"  # the destination's breaker is open (or half-open, its probe under way)
    BUSY = "busy"  # the destination has WEBHOOK_MAX_INFLIGHT_PER_HOST requests in flight


@dataclass(frozen=True, slots=True)
class DestinationLimits:
    """The limits every worker applies to every destination (WEBHOOK_* settings)."""

    max_inflight: int = 256  # requests in flight to one destination, across all workers
    breaker_threshold: int = 5  # transient failures in a row that open the breaker
    cooldown_ms: int = 5_000  # the first cool-down; each failed probe doubles it
    max_cooldown_ms: int = 300_000
    # How long a parked task dispatched again holds the slot kept for it until its claim (a
    # lease's length: its message may wait behind a backlog; if it is lost, the slot frees itself).
    hold_ms: int = 15_000


@dataclass(frozen=True, slots=True)
class Waiting:
    """Why a parked task waits (GET /api/v1/tasks/{id} shows it)."""

    destination: str
    reason: WaitReason
    since: int  # epoch ms
    next_probe_at: int | None = None  # when an open destination is tried again


@dataclass(frozen=True, slots=True)
class Destination:
    destination: str
    state: BreakerState
    in_flight: int
    failures: int  # transient failures in a row
    parked: int
    next_probe_at: int | None  # epoch ms, while open
    cooldown_ms: int | None  # the current cool-down, while not closed
    last_error: str | None
    last_active_at: int  # epoch ms


@dataclass(frozen=True, slots=True)
class DestinationReport:
    known: int
    open: int  # open or half-open
    parked: int  # tasks waiting for a destination, in all
    destinations: list[Destination]
