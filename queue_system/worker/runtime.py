"""Per-process resources of a worker, owned by a Dramatiq middleware's lifecycle hooks.

One `httpx.Client` (thread-safe, pooled) and one Redis client per worker process, created as
the process boots and closed when it shuts down; the reconciler loop runs beside the actor threads.
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
from queue_system.service.maintenance import Maintenance
from queue_system.service.runner import AckViaFinish, InFlight, TaskRunner
from queue_system.settings import Settings
from queue_system.storage.keys import Keys
from queue_system.storage.redis_store import TaskStore


@dataclass
class Runtime:
    runner: TaskRunner
    maintenance: Maintenance
    http: httpx.Client
    redis: redis.Redis
    store: TaskStore


_current: Runtime | None = None


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("the worker runtime is not started (before_worker_boot has not run)")
    return _current


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def build_runtime(settings: Settings, keys: Keys, acks: AckViaFinish | None = None) -> Runtime:
    client = redis.Redis.from_url(settings.redis_url or "", decode_responses=True, health_check_interval=30)
    threads = settings.worker.threads
    http = httpx.Client(
        limits=httpx.Limits(max_connections=threads * 2, max_keepalive_connections=threads * 2),
        headers={"User-Agent": "queue_system-webhooks/0.1"},
    )
    store = TaskStore(client, keys)
    in_flight = InFlight()
    runner = TaskRunner(store, load_kinds(settings), settings, http, in_flight, threading.Event(), acks=acks)
    maintenance = Maintenance(
        store,
        in_flight,
        lease_ms=settings.worker.lease_ms,
        poll_interval_ms=settings.worker.poll_interval_ms,
        retention_ms=settings.retention_ms,
    )
    return Runtime(runner, maintenance, http, client, store)


class WorkerRuntime(dramatiq.Middleware):
    def __init__(self, settings: Settings, keys: Keys) -> None:
        self.settings = settings
        self.keys = keys

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # Before, not after: Dramatiq starts consuming between the two hooks, and a message
        # that arrives first must find the runtime ready.
        global _current
        acked = getattr(broker, "acked_by_finish", None)  # QueueBroker (worker/broker.py)
        broker_id = getattr(broker, "broker_id", None)
        acks = AckViaFinish(broker_id, acked) if acked is not None and broker_id else None
        _current = build_runtime(self.settings, self.keys, acks)
        # Modules, kinds and clients live as long as the process: keep them out of the
        # collector's generations, so full collections stay short (tail latency).
        gc.freeze()
        _current.maintenance.start()
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
            _current.maintenance.stop()
            _current.http.close()
            _current.store.close()
            _current.redis.close()
            _current = None
