"""The baseline worker: bare Dramatiq actors, loaded by the dramatiq CLI like the product's worker.

    BENCH_REDIS_URL=redis://... python -m dramatiq bench.bare_worker --processes 2 --threads 8

Same broker class and middleware as the product (RedisBroker with TimeLimit + Retries), so the
difference measured is the product's own path: `noop` does nothing, `post` sends the body to a
URL with one shared `httpx.Client` per process (thread-safe, pooled), as the product does.
"""

from __future__ import annotations

import os
import threading

import dramatiq
import httpx
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Retries, TimeLimit

NAMESPACE = "bench:dramatiq"
THREADS = int(os.environ.get("BENCH_THREADS", "8"))

broker = RedisBroker(
    url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
    namespace=NAMESPACE,
    middleware=[TimeLimit(), Retries()],
    heartbeat_timeout=60_000,
)
dramatiq.set_broker(broker)

_lock = threading.Lock()
_client: httpx.Client | None = None


def client() -> httpx.Client:
    global _client
    with _lock:
        if _client is None:
            _client = httpx.Client(
                limits=httpx.Limits(max_connections=THREADS * 2, max_keepalive_connections=THREADS * 2),
                headers={"User-Agent": "bench-bare/0.1"},
            )
        return _client


@dramatiq.actor(queue_name="default", max_retries=0)
def noop() -> None:
    return None


@dramatiq.actor(queue_name="default", max_retries=0)
def post(url: str, body: str) -> None:
    response = client().post(
        url, content=body.encode(), headers={"Content-Type": "application/json"}, timeout=30.0
    )
    response.read()
    if not 200 <= response.status_code < 300:
        raise RuntimeError(f"HTTP {response.status_code}")
