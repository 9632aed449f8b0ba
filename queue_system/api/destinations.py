"""GET /api/v1/destinations: each webhook destination's circuit breaker, slots and parked tasks."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from queue_system.api.openapi import GUARDED_READ, responses
from queue_system.api.schemas import rfc3339
from queue_system.domain.destinations import Destination
from queue_system.service.tasks import TaskService


class DestinationOut(msgspec.Struct):
    """One destination, `scheme://host:port`. `state`: `closed` (deliveries flow), `open` (its
    tasks wait, parked, until `next_probe_at`), `half_open` (one probe is under way)."""

    destination: str
    state: Literal["closed", "open", "half_open"]
    in_flight: int  # requests under way, across all workers (at most WEBHOOK_MAX_INFLIGHT_PER_HOST)
    failures: int  # timeouts, connection errors and 5xx in a row
    parked: int  # tasks waiting for it
    next_probe_at: str | None  # while open
    cooldown_ms: int | None  # the current cool-down, while not closed
    last_error: str | None
    last_active_at: str


class DestinationsOut(msgspec.Struct):
    known: int  # destinations seen in the last 7 days
    open: int  # of which open or half-open
    parked: int  # tasks waiting for a destination, in all
    items: list[DestinationOut]  # the most recently active first


def destination_out(d: Destination) -> DestinationOut:
    return DestinationOut(
        destination=d.destination,
        state=d.state.value,
        in_flight=d.in_flight,
        failures=d.failures,
        parked=d.parked,
        next_probe_at=rfc3339(d.next_probe_at),
        cooldown_ms=d.cooldown_ms,
        last_error=d.last_error,
        last_active_at=rfc3339(d.last_active_at) or "",
    )


@get(
    "/api/v1/destinations",
    tags=["destinations"],
    summary="Webhook destinations: circuit breaker, requests in flight, failure streak, parked tasks",
    description=(
        "A destination is `scheme://host:port`. After WEBHOOK_BREAKER_THRESHOLD timeouts, connection "
        "errors or 5xx in a row its circuit breaker opens: its tasks wait (parked: no attempt counted) "
        "until `next_probe_at`, when one of them goes out as a probe; an answer closes the breaker and "
        "the waiting tasks go out, a failure doubles the cool-down (up to WEBHOOK_BREAKER_MAX_COOLDOWN)."
    ),
    responses=responses(400, 422, 503, guard=GUARDED_READ),
)
async def list_destinations(
    service: NamedDependency[TaskService],
    limit: Annotated[
        int, QueryParameter(ge=1, le=1000, description="destinations listed (default 100, max 1000)")
    ] = 100,
) -> DestinationsOut:
    report = await service.destinations(limit)
    items = [destination_out(d) for d in report.destinations]
    return DestinationsOut(known=report.known, open=report.open, parked=report.parked, items=items)
