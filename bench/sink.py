"""Webhook receivers for the benchmarks.

- nginx (Debian's package) answering 200 from its config: the throughput sink, since a Python sink
  costs as much CPU as the sender. `start_nginx` returns None when nginx is not installed.
- This module run as a script: a minimal asyncio HTTP/1.1 sink (keep-alive, Content-Length bodies)
  used when nginx is missing, and for the latency and retry scenarios because it records when each
  request arrived: paths under /rec/ are recorded, paths under /fail/ answer 500 (and are recorded),
  `GET /_arrivals` returns the records as JSON and forgets them.

    python bench/sink.py PORT
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
from pathlib import Path

from bench.common import PY, ROOT, Proc, base_env, port_open, spawn, wait_until

_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
_FAIL = b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nfail"
_MAX_BUFFER = 1 << 20


class _Sink(asyncio.Protocol):
    arrivals: list[tuple[str, float]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > _MAX_BUFFER:
            self.transport.close()
            return
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buf) < end + 4 + length:
                return
            self.buf = self.buf[end + 4 + length :]
            self._answer(head.split(" ", 2)[1])

    def _answer(self, path: str) -> None:
        now = time.time()
        if path.startswith("/_arrivals"):
            body = json.dumps(_Sink.arrivals).encode()
            _Sink.arrivals = []
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            self.transport.write(head.encode() + body)
            return
        if path.startswith(("/rec/", "/fail/")):
            _Sink.arrivals.append((path, now))
        self.transport.write(_FAIL if path.startswith("/fail/") else _OK)


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Sink, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def start_python_sink(port: int, logs: Path) -> Proc:
    proc = spawn("sink-py", [PY, str(ROOT / "bench" / "sink.py"), str(port)], env=base_env(), logs=logs)
    wait_until("the python sink", lambda: port_open(port) or not proc.running, 10)
    proc.check_alive()
    return proc


_NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_buffer_size 64k;
    server {{
        listen 127.0.0.1:{port};
        location /fail/ {{ return 500 "fail"; }}
        location / {{ return 200 "ok"; }}
    }}
}}
"""


def start_nginx(port: int, logs: Path) -> Proc | None:
    """nginx as a sink on 127.0.0.1:port, or None when it is not installed."""
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        return None
    conf_dir = logs / f"nginx-{port}"
    conf_dir.mkdir(parents=True, exist_ok=True)
    conf = conf_dir / "nginx.conf"
    conf.write_text(_NGINX_CONF.format(dir=conf_dir, port=port))
    proc = spawn("sink-nginx", [binary, "-p", str(conf_dir), "-c", str(conf)], env=base_env(), logs=logs)
    wait_until("nginx", lambda: port_open(port) or not proc.running, 10)
    proc.check_alive()
    return proc


def start_sink(port: int, logs: Path) -> tuple[Proc, str]:
    """The fastest sink available -> (process, its name)."""
    proc = start_nginx(port, logs)
    if proc is not None:
        return proc, "nginx"
    return start_python_sink(port, logs), "python"


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1])))
