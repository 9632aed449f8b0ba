"""A real HTTP receiver for tests: a ThreadingHTTPServer on 127.0.0.1 in a background thread.

It records every request (method, path, headers, body, arrival time) and answers from a script:
the next `Reply` of the script for each request, then the default once the script is used up.

    with Receiver(script=[500, 500], default=200) as rx:
        submit(rx.url("/hook"))
        assert rx.wait_for(3, timeout=10)

A `Reply` may delay its answer, or hang (never answer; the connection is dropped when the receiver
closes or after `hang_s`), so a worker's request timeout can be exercised. Waiting is on a
`threading.Condition`: `wait_for(n, timeout)` returns as soon as the n-th request has arrived.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay_s: float = 0.0  # answer after this long
    hang: bool = False  # never answer: hold the connection until the receiver closes (or hang_s)


HANG = Reply(hang=True)

ReplySpec = Reply | int


@dataclass(frozen=True, slots=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float  # time.monotonic() on arrival
    wall: float  # time.time() on arrival


def _reply(spec: ReplySpec) -> Reply:
    return spec if isinstance(spec, Reply) else Reply(status=spec)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a burst of deliveries (a batch) overflowed it, and the
    # dropped SYNs came back a second later, past the tests' 1 s request timeout.
    request_queue_size = 128
    receiver: Receiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout, killed worker) is expected here: stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.0: one request per connection, so no idle keep-alive connection outlives a test.
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            rx = self.server.receiver
            reply = rx._record(
                Received(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    at=time.monotonic(),
                    wall=time.time(),
                )
            )
            if reply.hang:
                rx._released.wait(rx.hang_s)
                self.close_connection = True
                return
            if reply.delay_s:
                rx._released.wait(reply.delay_s)
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
        except OSError:  # the client went away (timed out, was killed): nothing to answer
            self.close_connection = True

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()


class Receiver:
    def __init__(
        self, script: Iterable[ReplySpec] = (), default: ReplySpec = 200, *, hang_s: float = 15.0
    ) -> None:
        self.hang_s = hang_s
        self._script: deque[Reply] = deque(_reply(s) for s in script)
        self._default = _reply(default)
        self._requests: list[Received] = []
        self._cond = threading.Condition()
        self._released = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Receiver:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.receiver = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="receiver", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving; hanging and delayed handlers are released so the handler threads end."""
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()  # joins the handler threads
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- programming and inspecting ----------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the receiver is not started")
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def program(self, script: Iterable[ReplySpec] = (), default: ReplySpec | None = None) -> None:
        """Replace the script (and optionally the default) for the requests still to come."""
        with self._cond:
            self._script = deque(_reply(s) for s in script)
            if default is not None:
                self._default = _reply(default)

    @property
    def requests(self) -> list[Received]:
        with self._cond:
            return list(self._requests)

    @property
    def count(self) -> int:
        with self._cond:
            return len(self._requests)

    def wait_for(self, n: int, timeout: float) -> bool:
        """True as soon as at least `n` requests have arrived; False if `timeout` passes first."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._requests) >= n, timeout)

    def _record(self, request: Received) -> Reply:
        with self._cond:
            self._requests.append(request)
            reply = self._script.popleft() if self._script else self._default
            self._cond.notify_all()
            return reply
