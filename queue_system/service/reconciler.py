"""The reconciler: a loop in every worker process (all are safe together: each step is one script).

Each tick: dispatch scheduled and retrying tasks that are due, renew the leases of the tasks this
process is running, recover tasks whose lease expired (their worker died: SIGKILL, OOM, host loss),
purge finished tasks past their retention, and walk the waiting tasks a slice at a time to
dispatch again any whose message is gone (dead-lettered, or lost in a long Redis outage).
Recovery takes one lease period (WORKER_LEASE, 15 s by default), independent of Dramatiq's own
dead-worker requeue (minutes).
"""

from __future__ import annotations

import threading

import redis
from loguru import logger

from queue_system.domain.models import TaskStatus
from queue_system.service import destinations
from queue_system.service.clock import now_ms
from queue_system.service.runner import InFlight
from queue_system.storage.redis_store import TaskStore

# A waiting task whose message has been missing this long is dispatched again.
STRANDED_AFTER_MS = 5 * 60_000
# Waiting tasks examined per status every 10 s (about 2 ms of Redis time): a backlog of 100,000
# is walked in about half an hour; this is a safety net for a rare loss, not a hot path.
WALK_SLICE = 500


class Reconciler:
    def __init__(
        self,
        store: TaskStore,
        in_flight: InFlight,
        *,
        lease_ms: int,
        poll_interval_ms: int,
        retention_ms: int,
    ) -> None:
        self.store = store
        self.in_flight = in_flight
        self.lease_ms = lease_ms
        self.retention_ms = retention_ms
        self.poll_s = poll_interval_ms / 1000
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_renew = 0
        self._last_sweep = 0
        # Where the walk for stranded tasks is, per status (a rank: tasks leaving the index may
        # make it skip a few, which the next pass sees).
        self._walk = {TaskStatus.PENDING: 0, TaskStatus.RETRYING: 0}

    def tick(self) -> dict[str, int]:
        now = now_ms()
        done = {"promoted": self.store.promote_due(now)}
        done["unparked"] = destinations.wake(self.store, now)
        if now - self._last_renew >= self.lease_ms // 3:
            self._last_renew = now
            done["renewed"] = self.store.renew_leases(now + self.lease_ms, self.in_flight.snapshot())
            done["recovered"] = self.store.reclaim_expired(now, self.retention_ms)
            if done["recovered"]:
                logger.warning("recovered {} task(s) whose worker was lost", done["recovered"])
        if now - self._last_sweep >= 10_000:
            self._last_sweep = now
            done["swept"] = self.store.sweep(now)
            done["redispatched"] = self.redispatch_stranded(now)
        return done

    def redispatch_stranded(self, now: int) -> int:
        total = 0
        for status, offset in self._walk.items():
            checked, redispatched = self.store.redispatch_stranded(
                status, offset, now, STRANDED_AFTER_MS, limit=WALK_SLICE
            )
            self._walk[status] = offset + checked if checked == WALK_SLICE else 0
            total += redispatched
        if total:
            logger.warning("dispatched {} waiting task(s) again: their message was gone", total)
        return total

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="qs-reconciler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except redis.RedisError as exc:
                logger.warning("reconciler tick failed (will retry): {}", exc)
                self._stop.wait(1.0)
            self._stop.wait(self.poll_s)
