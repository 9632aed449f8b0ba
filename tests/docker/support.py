"""What the container tests share: running commands, bounded polls, the receiver on the Docker
bridge's gateway (the host as the containers see it)."""

from __future__ import annotations

import contextlib
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

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "docker-test-key-0123456789"
COMPOSE = os.environ.get("COMPOSE") or str(ROOT / ".venv" / "docker-tools" / "docker-compose")


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


class Stack:
    """One compose project of `files` (docker-compose.yml, then overrides), driven through the
    API's published port."""

    def __init__(self, env: dict[str, str], api: str, project: str, files: list[str]) -> None:
        self.env = env
        self.project = project
        self.files = [arg for name in files for arg in ("-f", str(ROOT / name))]
        self.api = httpx.Client(base_url=api, timeout=10, headers={"X-API-Key": API_KEY})

    def compose(self, *args: str, timeout: float = 120) -> str:
        return run([COMPOSE, "-p", self.project, *self.files, *args], timeout, self.env)

    def container(self, service: str) -> str:
        """The id of `service`'s (first) container, running or not."""
        ids = self.compose("ps", "-a", "-q", service).split()
        assert ids, f"no container for {service}"
        return ids[0]

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


@contextlib.contextmanager
def compose_up(
    receiver: Receiver, project: str, files: list[str], settings: dict[str, str], log_tail: int = 80
) -> Iterator[Stack]:
    """A compose project built from this checkout and up (every healthcheck green), removed with its
    volumes on the way out; its logs printed if anything failed. `settings` are the worker's."""
    port = free_port()
    env = {
        **os.environ,
        "API_PORT_PUBLISHED": str(port),
        # ENV=production (compose's default) refuses to start the API without keys.
        "API_KEYS": API_KEY,
        # The receiver's address is private, so the egress guard must be told to allow it.
        "EGRESS_ALLOW_CIDRS": f"{receiver.host}/32",
        **settings,
    }
    stack = Stack(env, f"http://127.0.0.1:{port}", project, files)
    stack.compose("down", "-v", "--remove-orphans", timeout=120)  # a previous run's leftovers
    try:
        # --build: the images from this checkout; --wait: every healthcheck green.
        stack.compose("up", "-d", "--build", "--wait", "--wait-timeout", "240", timeout=900)
        yield stack
    except BaseException:
        print(stack.compose("logs", "--no-color", "--tail", str(log_tail), timeout=60))
        raise
    finally:
        stack.api.close()
        stack.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=180)
