"""The module the dramatiq CLI loads in every worker process: broker first, then the actors.

Dramatiq binds actors to the broker at import, so the broker is chosen here from the environment:
the one module-level settings read the style guide allows (cmd/worker.py validated them already).
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.middleware import Retries, TimeLimit

from queue_system.config.settings import load_settings
from queue_system.logging import configure_logging
from queue_system.storage.connection import sync_client
from queue_system.storage.keys import Keys
from queue_system.worker.broker import FinishAckingBroker
from queue_system.worker.health import HealthReporting
from queue_system.worker.runtime import REDIS_REPLY_TIMEOUT_S, WorkerRuntime, current, worker_id

settings = load_settings(os.environ)
configure_logging(
    production=settings.production, level=settings.log_level, process="worker", worker_id=worker_id()
)
keys = Keys()
broker = FinishAckingBroker(
    # One client from the connection factory: a URL's server or the primary the sentinels name.
    client=sync_client(settings.redis, socket_timeout=REDIS_REPLY_TIMEOUT_S, socket_connect_timeout=5),
    namespace=keys.dramatiq_namespace,
    middleware=[TimeLimit(), Retries()],
    # Dead-worker requeue by Dramatiq itself is only a backstop: our leases recover tasks first.
    heartbeat_timeout=60_000,
)
broker.add_middleware(WorkerRuntime(settings, keys))
broker.add_middleware(  # ops: status for the master's GET /health (worker/health.py)
    HealthReporting(
        settings.redis,
        lambda: len(current().in_flight.snapshot()),
        lambda: current().metrics,
        probe_key=keys.probe,
    )
)
dramatiq.set_broker(broker)

from queue_system.worker import actors  # noqa: E402, F401  (actors bind to the broker set above)
