"""The reconciler: a loop in every worker process (all are safe together: each step is one script).

Each tick: dispatch scheduled and retrying tasks that are due, renew the leases of the tasks this
process is running, recover tasks whose lease expired (their worker died: SIGKILL, OOM, host loss),
purge finished tasks past their retention, and walk the waiting tasks a slice at a time to
dispatch again any whose message is gone (dead-lettered, or lost in a long Redis outage).
Recovery takes one lease period (WORKER_LEASE, 15 s by default), independent of Dramatiq's own
dead-worker requeue (minutes).

Crash recovery of the messages themselves: given its broker's id, the reconciler heartbeats it once
a second and puts back on their queues the messages that brokers silent for WORKER_LEASE had
fetched (claimed or not: a killed process may hold a full prefetch and hundreds of deliveries in
flight). It judges others only after its own heartbeats have succeeded for JUDGE_AFTER_MS: after a
Redis outage every live process must have beaten again first. Dramatiq's own requeue (random, a
KEYS over the keyspace, minutes) stays a backstop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import redis
from loguru import logger

from queue_system.domain.models import TaskStatus
from queue_system.service import destinations, queues, schedules
from queue_system.service.clock import now_ms
from queue_system.service.observe import NullObserver, Observer
from queue_system.service.runner import InFlight
from queue_system.storage.queues import QueueStore
from queue_system.storage.schedules import ScheduleStore
from queue_system.storage.types import TaskStore

# A waiting task whose message has been missing this long is dispatched again.
STRANDED_AFTER_MS = 5 * 60_000
# Waiting tasks examined per status every 10 s (about 2 ms of Redis time): a backlog of 100,000
# is walked in about half an hour; this is a safety net for a rare loss, not a hot path.
WALK_SLICE = 500
# How often this process's broker heartbeats (and the dead brokers are looked for).
HEARTBEAT_MS = 1_000
# This process's heartbeats must have succeeded this long before it judges other brokers dead.
JUDGE_AFTER_MS = 3_000
# How often it finishes resumes a dead API left half done (a backstop: the resume releases itself).
RELEASE_EVERY_MS = 1_000


class Reconciler:
    def __init__(
        self,
        store: TaskStore,
        in_flight: InFlight,
        *,
        lease_ms: int,
        poll_interval_ms: int,
        retention_ms: int,
        broker_id: str | None = None,
        observer: Observer | None = None,
        schedules: ScheduleStore | None = None,
        queues: QueueStore | None = None,
        operations: Callable[[int], int] | None = None,
    ) -> None:
        self.observer = observer or NullObserver()
        self.store = store
        self.broker_id = broker_id
        self.in_flight = in_flight
        self.lease_ms = lease_ms
        self.retention_ms = retention_ms
        self.poll_s = poll_interval_ms / 1000
        # Schedules fire here, in every worker process: no scheduler process (service/schedules.py).
        # (The store's Protocol has no client: the Redis store's, until worker/runtime.py passes one.)
        # None: this reconciler fires no schedules (tests of the other duties).
        self.schedules = schedules
        # Resumed queues' held tasks a dying API left behind (service/queues.py); None: none.
        self.queues = queues
        # Bulk operations step here too (service/operations.py `run_due`, bound by the caller).
        self.operations = operations
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_renew = 0
        self._last_sweep = 0
        self._last_beat = 0
        self._last_release = 0
        self._beating_since: int | None = None  # first heartbeat of the current unbroken run
        # Where the walk for stranded tasks is, per status (a rank: tasks leaving the index may
        # make it skip a few, which the next pass sees).
        self._walk = {TaskStatus.PENDING: 0, TaskStatus.RETRYING: 0}

    def tick(self) -> dict[str, int]:
        now = now_ms()
        done = {"promoted": self.store.promote_due(now)}
        if self.broker_id is not None and now - self._last_beat >= HEARTBEAT_MS:
            done["requeued"] = self.heartbeat(now)
        done["unparked"] = destinations.wake(self.store, now)
        if self.schedules is not None:
            done["fired"] = schedules.fire_due(self.schedules, now, self.observer)
        if self.queues is not None and now - self._last_release >= RELEASE_EVERY_MS:
            self._last_release = now
            done["released"] = queues.release_resumed(self.queues, now)
        if self.operations is not None:
            done["bulk"] = self.operations(now)
        if now - self._last_renew >= self.lease_ms // 3:
            self._last_renew = now
            done["renewed"] = self.store.renew_leases(now + self.lease_ms, self.in_flight.snapshot())
            done["recovered"] = self.store.reclaim_expired(now, self.retention_ms)
            self.observer.recovered(done["recovered"])
            if done["recovered"]:
                logger.warning("recovered {} task(s) whose worker was lost", done["recovered"])
        if now - self._last_sweep >= 10_000:
            self._last_sweep = now
            done["swept"] = self.store.sweep(now)
            done["redispatched"] = self.redispatch_stranded(now)
        return done

    def heartbeat(self, now: int) -> int:
        """Heartbeat this broker; requeue what dead brokers fetched. -> messages put back."""
        assert self.broker_id is not None
        if self._beating_since is None or now - self._last_beat > 3 * HEARTBEAT_MS:
            self._beating_since = now  # the first beat, or after a stall: beat a while before judging
        judge = now - self._beating_since >= JUDGE_AFTER_MS
        requeued = self.store.heartbeat(self.broker_id, now, self.lease_ms, judge=judge)
        self._last_beat = now
        if requeued:
            logger.warning("put back {} message(s) fetched by worker processes that stopped", requeued)
        return requeued

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
                self._beating_since = None
                logger.warning("reconciler tick failed (will retry): {}", exc)
                self._stop.wait(1.0)
            except Exception:  # a bug must not end the loop silently: leases would stop renewing
                self._beating_since = None
                logger.exception("reconciler tick failed (will retry)")
                self._stop.wait(1.0)
            self._stop.wait(self.poll_s)
