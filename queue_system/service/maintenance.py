"""The reconciler: a loop in every worker process (all are safe together: each step is one script).

Each tick: dispatch scheduled and retrying tasks that are due, renew the leases of the tasks this
process is running, recover tasks whose lease expired (their worker died: SIGKILL, OOM, host loss),
and purge finished tasks past their retention. Recovery takes one lease period (WORKER_LEASE,
15 s by default), independent of Dramatiq's own dead-worker requeue (minutes).
"""

from __future__ import annotations

import threading

import redis
from loguru import logger

from queue_system.service.clock import Clock, now_ms
from queue_system.service.runner import InFlight
from queue_system.storage.redis_store import TaskStore


class Maintenance:
    def __init__(
        self,
        store: TaskStore,
        in_flight: InFlight,
        *,
        lease_ms: int,
        poll_interval_ms: int,
        retention_ms: int,
        clock: Clock = now_ms,
    ) -> None:
        self.store = store
        self.in_flight = in_flight
        self.lease_ms = lease_ms
        self.retention_ms = retention_ms
        self.poll_s = poll_interval_ms / 1000
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_renew = 0
        self._last_sweep = 0

    def tick(self) -> dict[str, int]:
        now = self.clock()
        done = {"promoted": self.store.promote_due(now)}
        if now - self._last_renew >= self.lease_ms // 3:
            self._last_renew = now
            done["renewed"] = self.store.renew_leases(now + self.lease_ms, self.in_flight.snapshot())
            done["recovered"] = self.store.reclaim_expired(now, self.retention_ms)
            if done["recovered"]:
                logger.warning("recovered {} task(s) whose worker was lost", done["recovered"])
        if now - self._last_sweep >= 10_000:
            self._last_sweep = now
            done["swept"] = self.store.sweep(now)
        return done

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="qs-maintenance", daemon=True)
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
                logger.warning("maintenance tick failed (will retry): {}", exc)
                self._stop.wait(1.0)
            self._stop.wait(self.poll_s)
