"""Destinations (domain/destinations.py): the limits from the settings, and the reconciler's step.

Every worker process's reconciler calls `wake(store, now)` each tick (one short script): open
destinations whose cool-down is over get their oldest parked task as the probe, closed ones with
free slots get their oldest parked tasks back, each dispatched with a new token. Parked tasks cost
nothing in between: no message, no claim, no timer per task.
"""

from __future__ import annotations

from loguru import logger

from queue_system.domain.destinations import DestinationLimits
from queue_system.settings import Settings
from queue_system.storage.redis_store import TaskStore


def destination_limits(settings: Settings) -> DestinationLimits:
    w = settings.worker
    return DestinationLimits(
        max_inflight=w.max_inflight_per_host,
        breaker_threshold=w.breaker_threshold,
        cooldown_ms=w.breaker_cooldown_ms,
        max_cooldown_ms=w.breaker_max_cooldown_ms,
        hold_ms=w.lease_ms,
        max_inflight_per_endpoint=w.max_inflight_per_endpoint,
    )


def wake(store: TaskStore, now: int) -> int:
    """Dispatch the parked tasks whose destination can take them. -> how many."""
    dispatched, probes = store.wake_destinations(now)
    if probes:
        logger.info("probing {} open host(s) or endpoint(s) with one parked task each", probes)
    return dispatched
