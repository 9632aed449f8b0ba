"""What the real-world scenarios (7 slow receiver, 8 dead endpoint, 9 crash) share: the receiver of
bench/slow_receiver.py in its own process, submitting through the HTTP API, the product's settings
as the processes under test see them, and Redis counters read from outside.

These scenarios drive the product only through its public surface (`cmd/api.py`, `cmd/worker.py`,
the HTTP API, environment settings), so they measure today's worker and any later one alike.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.common import (
    EXTRA_ENV,
    PY,
    ROOT,
    Proc,
    base_env,
    embedded_redis,
    free_port,
    port_open,
    running,
    spawn,
    wait_until,
)
from bench.loadgen import open_loop_http
from bench.systems import KEYS, start_api
from queue_system.config.settings import SPEC


def start_receiver(name: str, port: int, logs: Path, *args: str) -> Proc:
    """`python -m bench.slow_receiver --port PORT ARGS...` (asyncio, uvloop), up and listening."""
    proc = spawn(
        name, [PY, "-m", "bench.slow_receiver", "--port", str(port), *args], env=base_env(), logs=logs
    )
    wait_until(f"the receiver {name}", lambda: port_open(port) or not proc.running, 15)
    proc.check_alive()
    return proc


@contextlib.contextmanager
def delayed_receiver_and_api(
    name: str, receiver: str, delay_ms: int, logs: Path
) -> Iterator[tuple[str, redis.Redis, str, str]]:
    """A fresh Redis, a receiver that answers after `delay_ms` and the API on that Redis, all
    stopped on the way out; -> (Redis URL, client, receiver base URL, the API's tasks URL)."""
    with embedded_redis(name) as (url, client):
        rx_port, api_port = free_port(), free_port()
        with (
            running(start_receiver(receiver, rx_port, logs, "--delay-ms", str(delay_ms))),
            running(start_api(url, api_port, logs)),
        ):
            yield url, client, f"http://127.0.0.1:{rx_port}", f"http://127.0.0.1:{api_port}/api/v1/tasks"


def start_default_worker(redis_url: str, logs: Path, name: str = "worker", **env: str) -> Proc:
    """`cmd/worker.py` at the product's default shape: only REDIS_URL is set (plus `--env` and `env`),
    so a change of the defaults (processes, threads, prefetch, in-flight) is what gets measured."""
    return spawn(
        name, [PY, str(ROOT / "cmd" / "worker.py")], env=base_env(REDIS_URL=redis_url, **env), logs=logs
    )


def receiver_stats(base: str) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{base}/_stats", timeout=10).json()
    return stats


def reset_receiver(base: str) -> None:
    httpx.post(f"{base}/_reset", timeout=10).raise_for_status()


def webhook_request(url: str, body: dict[str, Any] | None = None) -> bytes:
    """The JSON a client POSTs to /api/v1/tasks for one webhook (the shorthand form)."""
    task: dict[str, Any] = {"url": url, "method": "POST", "headers": {"X-Bench": "1"}}
    if body is not None:
        task["body"] = body
    return json.dumps(task, separators=(",", ":")).encode()


def submit_all(api: str, bodies: list[bytes], max_in_flight: int = 32) -> int:
    """POST every body to the API as fast as it takes them (not timed) -> the number refused."""
    _, errors = open_loop_http(api, bodies, rate=1e9, max_in_flight=max_in_flight)
    return errors


def setting(name: str, fallback: str) -> str:
    """A setting as the processes under test get it: `--env` first, then the product's documented
    default (SPEC), else `fallback` (a setting today's code does not have yet)."""
    if name in EXTRA_ENV:
        return EXTRA_ENV[name]
    for var in SPEC:
        if var.name == name and var.default is not None:
            return var.default
    return fallback


def setting_value(name: str, fallback: str) -> Any:
    """The parsed value (ms for durations) of `setting(name, fallback)`."""
    raw = setting(name, fallback)
    for var in SPEC:
        if var.name == name:
            return var.value(raw)
    return int(raw)


def completed(client: redis.Redis) -> int:
    return int(client.zcard(KEYS.index(status="completed")))


def queued(client: redis.Redis) -> int:
    """Messages waiting in the default queue's list (not yet fetched by any worker process)."""
    return int(client.llen(KEYS.queue("default")))
