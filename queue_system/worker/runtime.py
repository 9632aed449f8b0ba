"""Per-process resources of a worker, owned by a Dramatiq middleware's lifecycle hooks.

One `httpx.Client` (thread-safe, pooled) and one Redis client per worker process, created as
the process boots and closed when it shuts down; the reconciler loop runs beside the actor threads.
`Runtime.run` is what the actors call: it gives the runner the message's ack (built by the broker)
and, when the finish script did the ack, tells the broker's consumer not to ack again.
"""

from __future__ import annotations

import gc
import os
import socket
import threading
from dataclasses import dataclass

import dramatiq
import httpx
import redis
from loguru import logger

from queue_system.kinds import load_kinds
from queue_system.service.destinations import destination_limits
from queue_system.service.reconciler import Reconciler
from queue_system.service.runner import InFlight, TaskRunner
from queue_system.settings import Settings
from queue_system.storage.keys import Keys
from queue_system.storage.redis_store import TaskStore
from queue_system.worker.broker import FinishAckingBroker


@dataclass
class Runtime:
    runner: TaskRunner
    reconciler: Reconciler
    http: httpx.Client
    redis: redis.Redis
    store: TaskStore
    # Set when the broker lets the finish script ack each message (worker/broker.py).
    broker: FinishAckingBroker | None = None

    def run(self, queue: str, task_id: str, token: int) -> None:
        """Run the message (task_id, token) the consumer of `queue` fetched."""
        broker = self.broker
        if broker is None:
            self.runner.run(task_id, token)
            return
        ack = broker.ack_in_finish(queue, task_id, token)
        if self.runner.run(task_id, token, ack):
            broker.acked_in_finish(ack)


_current: Runtime | None = None


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("the worker runtime is not started (before_worker_boot has not run)")
    return _current


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def build_runtime(settings: Settings, keys: Keys, broker: FinishAckingBroker | None = None) -> Runtime:
    client = redis.Redis.from_url(settings.redis_url or "", decode_responses=True, health_check_interval=30)
    threads = settings.worker.threads
    http = httpx.Client(
        limits=httpx.Limits(max_connections=threads * 2, max_keepalive_connections=threads * 2),
        headers={"User-Agent": "queue_system-webhooks/0.1"},
    )
    store = TaskStore(client, keys, destination_limits(settings))
    in_flight = InFlight()
    runner = TaskRunner(store, load_kinds(settings), settings, http, in_flight, threading.Event())
    reconciler = Reconciler(
        store,
        in_flight,
        lease_ms=settings.worker.lease_ms,
        poll_interval_ms=settings.worker.poll_interval_ms,
        retention_ms=settings.retention_ms,
    )
    return Runtime(runner, reconciler, http, client, store, broker)


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
        # Modules, kinds and clients live as long as the process: keep them out of the
        # collector's generations, so full collections stay short (tail latency).
        gc.freeze()
        _current.reconciler.start()
        logger.info(
            "worker ready: {} threads, kinds: {}",
            self.settings.worker.threads,
            ", ".join(_current.runner.registry.names()),
        )

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if _current is not None:
            logger.info("worker stopping: finishing running tasks, leaving the rest queued")
            _current.runner.stopping.set()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        global _current
        if _current is not None:
            _current.reconciler.stop()
            _current.http.close()
            _current.store.close()
            _current.redis.close()
            _current = None
