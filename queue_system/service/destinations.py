"""Destinations (domain/destinations.py): the limits from the settings, and the reconciler's step.

Every worker process's reconciler calls `wake(store, now)` each tick (one short script), for hosts
and endpoints alike: an open one whose cool-down is over gets its oldest parked task as the probe
(when a slot is free), a closed one with free slots gets its oldest parked tasks back (an endpoint
within its host's free slots), each dispatched with a new token. Parked tasks cost nothing in
between: no message, no claim, no timer per task.
"""

from __future__ import annotations

from loguru import logger

from queue_system.config.settings import Settings
from queue_system.domain.destinations import DestinationLimits
from queue_system.storage.types import TaskStore


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
