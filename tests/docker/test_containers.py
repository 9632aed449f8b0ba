"""The containers end to end (`make docker-test`): docker-compose.yml built and run for real.

A webhook goes in through the API's published port and out of a worker container to a receiver on
this machine (bound on the Docker bridge's gateway address, the host as the containers see it).
Then two workers deliver slow webhooks and one container is stopped mid-delivery the way
`docker compose stop` does it (SIGTERM, then the grace): every task must still end `completed`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "docker-test-key-0123456789"
COMPOSE = os.environ.get("COMPOSE") or str(ROOT / ".venv" / "docker-tools" / "docker-compose")
# Its own project name: never touches a developer's `make docker-up` stack.
PROJECT = "queue-system-ci"
STOP_GRACE_S = 70


def run(args: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def poll(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


class Receiver:
    """Records webhook bodies; `?delay=S` answers after S seconds. Counts requests in flight."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.bodies: list[str] = []
        self.in_flight = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                delay = float(parse_qs(urlsplit(self.path).query).get("delay", ["0"])[0])
                with receiver.lock:
                    receiver.in_flight += 1
                try:
                    time.sleep(delay)  # the slow destination this receiver plays
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                finally:
                    with receiver.lock:
                        receiver.in_flight -= 1
                        receiver.bodies.append(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.server.server_port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Stack:
    def __init__(self, env: dict[str, str], api: str) -> None:
        self.env = env
        self.api = httpx.Client(base_url=api, timeout=10, headers={"X-API-Key": API_KEY})

    def compose(self, *args: str, timeout: float = 120) -> str:
        return run([COMPOSE, "-p", PROJECT, "-f", str(ROOT / "docker-compose.yml"), *args], timeout, self.env)

    def workers(self) -> list[str]:
        return self.compose("ps", "-q", "--status", "running", "worker").split()

    def submit(self, task_id: str, url: str) -> None:
        body = {"id": task_id, "type": "webhook", "payload": {"url": url, "body": task_id}}
        response = self.api.post("/api/v1/tasks", json=body)
        assert response.status_code == 201, response.text

    def status(self, task_id: str) -> str:
        response = self.api.get(f"/api/v1/tasks/{task_id}")
        assert response.status_code == 200, response.text
        return str(response.json()["status"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bridge_gateway() -> str:
    """The host's address on Docker's default bridge: reachable from every container, and only
    from this machine (it is not on any outside interface)."""
    out = run(["docker", "network", "inspect", "bridge", "--format", "{{json .IPAM.Config}}"], 30)
    config = json.loads(out)[0]
    # Older daemons list only the subnet; the gateway is then its first address.
    return str(config.get("Gateway") or next(ipaddress.ip_network(config["Subnet"]).hosts()))


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rx = Receiver(bridge_gateway())
    yield rx
    rx.close()


@pytest.fixture(scope="module")
def stack(receiver: Receiver) -> Iterator[Stack]:
    port = free_port()
    env = {
        **os.environ,
        "API_PORT_PUBLISHED": str(port),
        # ENV=production (compose's default) refuses to start the API without keys.
        "API_KEYS": API_KEY,
        # The receiver's address is private, so the egress guard must be told to allow it.
        "EGRESS_ALLOW_CIDRS": f"{receiver.host}/32",
        # Two deliveries at a time per worker container: "three in flight" means both are busy.
        "WORKER_PROCESSES": "1",
        "WORKER_CONCURRENCY": "2",
        "WORKER_STOP_GRACE": f"{STOP_GRACE_S}s",
    }
    stack = Stack(env, f"http://127.0.0.1:{port}")
    stack.compose("down", "-v", "--remove-orphans", timeout=120)  # a previous run's leftovers
    try:
        # --build: the images from this checkout; --wait: every healthcheck green.
        stack.compose("up", "-d", "--build", "--wait", "--wait-timeout", "240", timeout=900)
        yield stack
    except BaseException:
        print(stack.compose("logs", "--no-color", "--tail", "80", timeout=60))
        raise
    finally:
        stack.api.close()
        stack.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=180)


def test_a_webhook_through_the_published_port_completes(stack: Stack, receiver: Receiver) -> None:
    stack.submit("ci-one", receiver.url("/hook"))
    assert poll(lambda: stack.status("ci-one") == "completed", timeout=60), stack.status("ci-one")
    assert "ci-one" in receiver.bodies


def test_stopping_a_worker_mid_delivery_loses_nothing(stack: Stack, receiver: Receiver) -> None:
    stack.compose(
        "up", "-d", "--scale", "worker=2", "--no-recreate", "--wait", "--wait-timeout", "120", timeout=300
    )
    workers = stack.workers()
    assert len(workers) == 2, workers
    victim = workers[0]
    grace = run(["docker", "inspect", "--format", "{{.Config.StopTimeout}}", victim], 30).strip()
    assert grace == str(STOP_GRACE_S), f"compose did not hand stop_grace_period to the container: {grace}"

    ids = [f"ci-slow-{i}" for i in range(8)]
    for task_id in ids:
        stack.submit(task_id, receiver.url("/slow?delay=4"))
    # Each container delivers at most 2 at once: 3 in flight means both containers are mid-delivery.
    assert poll(lambda: receiver.in_flight >= 3, timeout=60), receiver.in_flight

    started = time.monotonic()
    # What `docker compose stop` does to one container: STOPSIGNAL (SIGTERM), then SIGKILL after
    # the container's stop timeout (stop_grace_period, checked above).
    run(["docker", "stop", victim], STOP_GRACE_S + 30)
    stopped_after = time.monotonic() - started
    exit_code = run(["docker", "inspect", "--format", "{{.State.ExitCode}}", victim], 30).strip()
    assert exit_code == "0", f"the worker did not stop cleanly (exit {exit_code}, {stopped_after:.1f} s)"
    assert stopped_after < STOP_GRACE_S, "the worker needed Docker's SIGKILL"

    def all_completed() -> bool:
        return all(stack.status(task_id) == "completed" for task_id in ids)

    assert poll(all_completed, timeout=120, interval=1), {t: stack.status(t) for t in ids}
    assert set(ids) <= set(receiver.bodies)
    assert len(stack.workers()) == 1
