"""What the worker's master process adds to Dramatiq's: GET /health and GET /metrics, and a monitor
that stops a stalled instance with a non-zero exit.

With API keys configured and METRICS_PUBLIC unset, GET /metrics needs one (any role:
`Authorization: Bearer <key>` or `X-API-Key`), as the API's does; /health stays open for probes.
Wrong keys count against the client address in the API's lockout (storage/auth_failures.py), so
this port is no faster a way to guess keys than the API: a locked address gets 429 with
`Retry-After`, whatever its key, once this process has heard of the lock (at a wrong key here).

The master is the dramatiq CLI's `main`, run in this process (worker/launch.py). Before it forks
the worker processes, `Master.start` binds the two ports (a port in use stops start-up at once)
and starts the monitor thread; the forked children close their copies of the listening sockets.

The monitor reads the processes' status files once a second (worker/health.py). When one is
stalled it logs why and stops that process (SIGTERM, so running tasks finish; SIGKILL if the
process stopped reporting altogether); Dramatiq's master then stops the others, as it does
whenever a worker process exits, and `exit_code` makes the instance's exit non-zero.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import redis
from loguru import logger

from queue_system.domain.keyring import KeyRing, presented_key
from queue_system.storage.auth_failures import FailureThrottle
from queue_system.worker.health import Verdict, judge, read_statuses
from queue_system.worker.instance import metrics_dir, status_dir
from queue_system.worker.metrics import render

EXIT_STALLED = 70  # EX_SOFTWARE: the instance stopped itself because a process stalled
BIND_HOST = "0.0.0.0"  # noqa: S104 - scraped and probed from outside the container
JSON = "application/json"
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
MAX_LOCAL_LOCKS = 10_000  # locked addresses remembered here (the truth is in Redis)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        route = self.server.routes.get(self.path.split("?", 1)[0])
        if route is None:
            self._send(404, JSON, b'{"status": "not found"}')
            return
        if self.server.keys is not None and not self._authorized():
            return
        status, content_type, body = route()
        self._send(status, content_type, body)

    def _authorized(self) -> bool:
        """Whether the request's key is one of the ring's; if not, the refusal (401 or 429) is sent."""
        server, address = self.server, self.client_address[0]
        locked_s = server.locked_for(address)
        key = presented_key(self.headers["Authorization"], self.headers["X-API-Key"])
        if not locked_s and server.keys is not None and server.keys.authorize(key) is not None:
            return True
        if not locked_s and key is not None:  # a wrong key, not a forgotten one: it counts
            locked_s = server.failed(address)
        if locked_s:
            body = b'{"status": 429, "detail": "too many wrong API keys from this address"}'
            self._send(429, "application/problem+json", body, {"Retry-After": str(locked_s)})
            return False
        body = b'{"status": 401, "detail": "an API key is required (METRICS_PUBLIC=true opens /metrics)"}'
        self._send(401, "application/problem+json", body, {"WWW-Authenticate": 'Bearer realm="queue_system"'})
        return False

    def _send(
        self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return  # probes every few seconds: not worth a log line each


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        port: int,
        routes: dict[str, Any],
        keys: KeyRing | None = None,
        throttle: FailureThrottle | None = None,
    ) -> None:
        super().__init__((BIND_HOST, port), _Handler)
        self.routes = routes
        self.keys = keys  # None: open; else any key of the ring is asked for
        self.throttle = throttle  # the API's lockout of addresses presenting wrong keys; None: none
        self._locked: dict[str, float] = {}  # address -> until (time.monotonic()), as Redis said
        self._lock = threading.Lock()

    def locked_for(self, address: str) -> int:
        """Whole seconds `address` stays locked out, as this process heard; 0: not locked."""
        with self._lock:
            left = self._locked.get(address, 0.0) - time.monotonic()
            if left <= 0:
                self._locked.pop(address, None)
                return 0
        return max(1, math.ceil(left))

    def failed(self, address: str) -> int:
        """Count a wrong key from `address`; -> seconds it is locked out for (0: not locked)."""
        if self.throttle is None:
            return 0
        try:
            state = self.throttle.failed(address)
        except redis.RedisError as exc:  # no lockouts while Redis is away; the key check still holds
            logger.warning("could not count a failed /metrics key check from {}: {}", address, exc)
            return 0
        if not state.locked_ms:
            return 0
        if state.new_lock:
            logger.warning("/metrics key checks from {} locked out for {}s", address, state.retry_after_s)
        with self._lock:
            if len(self._locked) >= MAX_LOCAL_LOCKS:
                now = time.monotonic()
                self._locked = {a: until for a, until in self._locked.items() if until > now}
            if len(self._locked) < MAX_LOCAL_LOCKS:
                self._locked[address] = time.monotonic() + state.locked_ms / 1000
        return state.retry_after_s


@dataclass
class Master:
    instance: Path
    processes: int
    health_port: int  # 0: not served
    metrics_port: int  # 0: not served
    metrics_keys: KeyRing | None = None  # None: /metrics is open (METRICS_PUBLIC, or no keys)
    metrics_throttle: FailureThrottle | None = None  # the lockout of wrong keys; None: none
    stalled: str | None = None
    _servers: list[_Server] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        """Bind the ports (OSError when one is taken), then serve and monitor in threads."""
        if self.health_port:
            self._servers.append(_Server(self.health_port, {"/health": self.health}))
        if self.metrics_port:
            routes = {"/metrics": self.metrics}
            self._servers.append(_Server(self.metrics_port, routes, self.metrics_keys, self.metrics_throttle))
        os.register_at_fork(after_in_child=self._close_in_child)
        for server in self._servers:
            threading.Thread(target=server.serve_forever, name="qs-http", daemon=True).start()
        threading.Thread(target=self._monitor, name="qs-monitor", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def exit_code(self, dramatiq_code: int) -> int:
        return EXIT_STALLED if self.stalled else dramatiq_code

    def verdict(self) -> Verdict:
        return judge(read_statuses(status_dir(self.instance)), self.processes, time.time())

    def health(self) -> tuple[int, str, bytes]:
        verdict = self.verdict()
        body = verdict.body()
        if self.stalled:
            body["status"], body["reasons"] = "unavailable", [f"stopping: {self.stalled}"]
        code = 200 if body["status"] == "ok" else 503
        return code, JSON, json.dumps(body).encode()

    def metrics(self) -> tuple[int, str, bytes]:
        return 200, PROMETHEUS_TEXT, render(str(metrics_dir(self.instance)))

    def _close_in_child(self) -> None:
        for server in self._servers:
            with contextlib.suppress(OSError):
                server.socket.close()

    def _monitor(self) -> None:
        while not self._stop.wait(1.0) and self.stalled is None:
            try:
                verdict = self.verdict()
            except Exception:  # the monitor must not die of one bad read
                logger.exception("reading the worker processes' status failed")
                continue
            if verdict.stalled:
                self._stop_stalled(verdict)

    def _stop_stalled(self, verdict: Verdict) -> None:
        first = verdict.stalled[0]
        self.stalled = first.reason
        logger.critical("worker stalled: {}; stopping the worker (exit code {})", first.reason, EXIT_STALLED)
        for one in verdict.stalled:
            with contextlib.suppress(ProcessLookupError):
                os.kill(one.pid, signal.SIGKILL if one.hung else signal.SIGTERM)
