"""GET /api/v1/destinations: each webhook host and endpoint, its circuit breaker, slots and parked
tasks (domain/destinations.py: the two levels)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from queue_system.api.openapi import GUARDED_READ, responses
from queue_system.api.schemas import rfc3339
from queue_system.domain.destinations import DestinationStatus
from queue_system.domain.redaction import redact_text, redact_url
from queue_system.service.tasks import TaskService


class DestinationOut(msgspec.Struct):
    """One host (`scheme://host:port`, `level` host) or endpoint (the URL without its query, or
    `scheme://host:port#key`, `level` endpoint). `state`: `closed` (deliveries flow), `open` (its
    tasks wait, parked, until `next_probe_at`), `half_open` (one probe is under way)."""

    destination: str
    level: Literal["host", "endpoint"]
    state: Literal["closed", "open", "half_open"]
    # Requests under way, across all workers: at most WEBHOOK_MAX_INFLIGHT_PER_HOST for a host,
    # WEBHOOK_MAX_INFLIGHT_PER_ENDPOINT for an endpoint.
    in_flight: int
    failures: int  # in a row: a host's connect failures, an endpoint's 5xx and response timeouts
    parked: int  # tasks waiting for it (at this level)
    next_probe_at: str | None  # while open
    cooldown_ms: int | None  # the current cool-down, while not closed
    last_error: str | None  # redacted (domain/redaction.py)
    last_active_at: str


class DestinationsOut(msgspec.Struct):
    known: int  # hosts seen in the last 7 days
    open: int  # of which open or half-open
    parked: int  # tasks waiting for a host or an endpoint, in all
    items: list[DestinationOut]  # the hosts, the most recently active first
    endpoints_known: int = 0  # endpoints with requests in flight, tasks parked or a breaker's state
    endpoints_open: int = 0  # of which open or half-open
    endpoints: list[DestinationOut] = msgspec.field(default_factory=list)  # most recently active first


def destination_out(d: DestinationStatus) -> DestinationOut:
    return DestinationOut(
        destination=redact_url(d.destination),
        level=d.level.value,
        state=d.state.value,
        in_flight=d.in_flight,
        failures=d.failures,
        parked=d.parked,
        next_probe_at=rfc3339(d.next_probe_at),
        cooldown_ms=d.cooldown_ms,
        last_error=redact_text(d.last_error) if d.last_error else None,
        last_active_at=rfc3339(d.last_active_at) or "",
    )


@get(
    "/api/v1/destinations",
    tags=["destinations"],
    summary="Webhook hosts and endpoints: breakers, requests in flight, failure streaks, parked tasks",
    description=(
        "A host is `scheme://host:port`; an endpoint is a webhook URL without its query (or the "
        "caller's `endpoint` key on its host). After WEBHOOK_BREAKER_THRESHOLD failures in a row a "
        "breaker opens: an endpoint's on 5xx and response timeouts, a host's on DNS failures, refused "
        "connections, connect timeouts and TLS failures. Its tasks wait (parked: no attempt counted) "
        "until `next_probe_at`, when one of them goes out as a probe; an answer below 500 closes the "
        "breaker and the waiting tasks go out, a failure doubles the cool-down (up to "
        "WEBHOOK_BREAKER_MAX_COOLDOWN). `limit` rows of each level; the counts cover at most 2,000 of each."
    ),
    responses=responses(400, 422, 503, guard=GUARDED_READ),
)
async def list_destinations(
    service: NamedDependency[TaskService],
    limit: Annotated[
        int, QueryParameter(ge=1, le=1000, description="rows of each level listed (default 100, max 1000)")
    ] = 100,
) -> DestinationsOut:
    report = await service.destinations(limit)
    return DestinationsOut(
        known=report.known,
        open=report.open,
        parked=report.parked,
        items=[destination_out(d) for d in report.destinations],
        endpoints_known=report.known_endpoints,
        endpoints_open=report.open_endpoints,
        endpoints=[destination_out(d) for d in report.endpoints],
    )
