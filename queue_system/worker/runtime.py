"""Per-process resources of a worker, owned by a Dramatiq middleware's lifecycle hooks.

One Redis client, one `httpx.Client` (thread-safe, pooled: the kinds that run on the actor threads)
and one `DeliveryLoop` (an event loop thread with an aiohttp pool: the webhook deliveries) per
worker process, created as the process boots and closed when it shuts down; the reconciler loop
runs beside the actor threads and heartbeats this process's broker.

`Runtime.run` is what the actors call: it hands the message to the attempt owner
(worker/attempts.py), which claims, sends or runs, records and decides the ack.

SIGTERM: the loop takes no new delivery (an actor thread waiting for room gives its task back),
deliveries in flight get up to the request timeout to finish and be recorded, those the loop had
not started are given back (UNCLAIM: a new message; the old one acked), and the messages still
in Dramatiq's buffers go back to their queue (Dramatiq's own requeue).
"""

from __future__ import annotations

import functools
import gc
import os
import socket
import threading
from dataclasses import dataclass

import dramatiq
import httpx
import redis
from loguru import logger

from queue_system.config.settings import Settings
from queue_system.kinds import load_kinds
from queue_system.kinds.webhook_security import egress_connector, egress_transport
from queue_system.service.destinations import destination_limits
from queue_system.service.operations import operation_runner
from queue_system.service.reconciler import Reconciler
from queue_system.service.runner import InFlight, TaskRunner
from queue_system.storage.connection import sync_client
from queue_system.storage.keys import Keys
from queue_system.storage.queues import QueueStore
from queue_system.storage.schedules import ScheduleStore
from queue_system.storage.worker_store import RedisTaskStore
from queue_system.transports.async_http import AsyncHttpSender, PoolLimits
from queue_system.worker.attempts import Attempts
from queue_system.worker.broker import FinishAckingBroker
from queue_system.worker.metrics import WorkerMetrics

# Beyond the request timeout, how long a stopping worker waits for its deliveries in flight.
DRAIN_SLACK_S = 5.0
# No Redis call of the worker blocks by design (Dramatiq's fetch is a script): longer is a stall.
REDIS_REPLY_TIMEOUT_S = 10.0


@dataclass
class Runtime:
    runner: TaskRunner
    attempts: Attempts
    reconciler: Reconciler
    http: httpx.Client
    redis: redis.Redis
    store: RedisTaskStore
    metrics: WorkerMetrics | None = None  # ops: the process's Prometheus metrics (worker/metrics.py)

    @property
    def in_flight(self) -> InFlight:
        return self.attempts.in_flight

    def run(self, queue: str, task_id: str, token: int) -> None:
        """Run the message (task_id, token) the consumer of `queue` fetched."""
        self.attempts.run(queue, task_id, token)


_current: Runtime | None = None


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("the worker runtime is not started (before_worker_boot has not run)")
    return _current


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def build_runtime(
    settings: Settings,
    keys: Keys,
    broker: FinishAckingBroker | None = None,
    *,
    max_per_host: int | None = None,
) -> Runtime:
    """`max_per_host`: deliveries in flight per destination in this process (None: up to
    WORKER_MAX_INFLIGHT; the cap across all workers is the destination's, kept in Redis)."""
    # A reply timeout: a primary that stops answering (frozen, partitioned) must fail the call,
    # so the thread retries on a connection to wherever the primary is now, not wait forever.
    client = sync_client(
        settings.redis,
        decode_responses=True,
        health_check_interval=30,
        socket_timeout=REDIS_REPLY_TIMEOUT_S,
        socket_connect_timeout=REDIS_REPLY_TIMEOUT_S,
    )
    threads = settings.worker.threads
    limits = httpx.Limits(max_connections=threads * 2, max_keepalive_connections=threads * 2)
    http = httpx.Client(
        # The egress guard: every connection, each redirect hop included, passes EGRESS_*.
        transport=egress_transport(settings, limits=limits),
        follow_redirects=settings.security.follow_redirects,
        max_redirects=5,
        headers={"User-Agent": "queue_system-webhooks/0.1"},
    )
    store = RedisTaskStore(client, keys, destination_limits(settings))
    in_flight = InFlight()
    metrics = WorkerMetrics()
    runner = TaskRunner(
        store, load_kinds(settings), settings, http, in_flight, threading.Event(), observer=metrics
    )
    reconciler = Reconciler(
        store,
        in_flight,
        lease_ms=settings.worker.lease_ms,
        poll_interval_ms=settings.worker.poll_interval_ms,
        retention_ms=settings.retention_ms,
        broker_id=broker.broker_id if broker else None,
        observer=metrics,
        schedules=ScheduleStore(client, keys),
        queues=QueueStore(client, keys),
        operations=operation_runner(
            client, keys, settings, broker.broker_id if broker else None, observer=metrics
        ),
    )
    inflight = settings.worker.max_inflight
    per_host = min(max_per_host or inflight, inflight)
    # One pooled connection per delivery in flight, kept alive per destination between deliveries.
    sender = AsyncHttpSender(
        PoolLimits(max_connections=inflight, max_per_host=per_host, keepalive_s=30.0),
        # The egress guard at connect time: resolve once, check every address, connect to it.
        connector_factory=functools.partial(egress_connector, settings),
        follow_redirects=settings.security.follow_redirects,
    )
    # Deliveries waiting for their destination's slot hold no global slot; they are bounded too
    # (beyond, a task is given back to the queue rather than held in this process' memory). With
    # no cap tighter than the global one, none ever waits.
    attempts = Attempts(
        runner,
        sender,
        broker,
        max_inflight=inflight,
        max_per_host=per_host,
        max_waiting_per_host=inflight if per_host < inflight else None,
    )
    return Runtime(runner, attempts, reconciler, http, client, store, metrics)


class WorkerRuntime(dramatiq.Middleware):
    def __init__(self, settings: Settings, keys: Keys) -> None:
        self.settings = settings
        self.keys = keys

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # Before, not after: Dramatiq starts consuming between the two hooks, and a message
        # that arrives first must find the runtime ready.
        global _current
        acking = broker if isinstance(broker, FinishAckingBroker) else None
        _current = build_runtime(self.settings, self.keys, acking)
        _current.attempts.start()
        # Modules, kinds and clients live as long as the process: keep them out of the
        # collector's generations, so full collections stay short (tail latency).
        gc.freeze()
        _current.reconciler.start()
        logger.info(
            "worker ready: {} threads, up to {} deliveries in flight, kinds: {}",
            self.settings.worker.threads,
            self.settings.worker.max_inflight,
            ", ".join(_current.runner.registry.names()),
        )

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if _current is not None:
            logger.info("worker stopping: finishing running tasks and deliveries, leaving the rest queued")
            _current.attempts.refuse_new()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # The actor threads and consumers have stopped; the reconciler still renews the leases
        # (and heartbeats) of the deliveries in flight while they finish.
        global _current
        if _current is not None:
            _current.attempts.drain(self.settings.worker.request_timeout_ms / 1000 + DRAIN_SLACK_S)
            _current.reconciler.stop()
            _current.http.close()
            _current.store.close()
            _current.redis.close()
            _current = None
