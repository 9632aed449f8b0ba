"""A webhook receiver that behaves like the real world: slow, sometimes failing, sometimes dead.

One asyncio server (raw `asyncio.start_server`, HTTP/1.1 keep-alive; no thread per request), so one
core drives thousands of slow requests at once, and the benchmarks measure the sender, not this.

    python -m bench.slow_receiver --port 9100 --delay-ms 100
    python -m bench.slow_receiver --port 9101 --mode hang                  # accepts, never answers
    python -m bench.slow_receiver --port 9102 --error-rate 0.1 --hang-rate 0.02

Modes: `answer` (200 after `--delay-ms`; `--error-rate` of them 500, `--hang-rate` of them never
answered) and `hang` (every request is held until the client gives up). With `--dead-prefix
/dead`, the paths under it are one dead endpoint on this host:port (`--dead-mode hang`: never
answered; `error`: 500 at once) while the others behave as above, and `/_stats` counts the dead
ones apart (`dead_requests`, `dead_active`, `dead_max_active`). Requests to paths under /rec/ are
recorded with their arrival time: `GET /_arrivals` returns `[[path, epoch s], ...]` and forgets
them (as bench/sink.py does). `GET /_stats` answers at
once with the counters as JSON (not counted itself); `POST /_reset` zeroes them. With `--id-field
NAME`, the top-level field NAME of each JSON body is read as an id, and `GET /_ids` answers
`{id: {"200": n, "500": n, "hung": n}}` (the soak test checks every task reached it). In a test,
run it in a background thread:

    with SlowReceiver(delay_ms=100) as rx:
        ... rx.url("/hook") ...; rx.stats.max_active
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import uvloop

_REASONS = {200: "OK", 404: "Not Found", 500: "Internal Server Error"}


@dataclass
class Stats:
    """Counters; touched only on the receiver's event loop thread (read anywhere: ints are atomic)."""

    requests: int = 0  # requests received (hung ones included)
    answered: Counter[int] = field(default_factory=Counter)  # status -> count
    hung: int = 0
    connections: int = 0  # open now
    max_connections: int = 0
    active: int = 0  # requests received and not answered yet
    max_active: int = 0
    paths: Counter[str] = field(default_factory=Counter)  # path -> requests received
    ids: dict[str, Counter[str]] = field(default_factory=dict)  # body id -> outcome -> count
    dead_requests: int = 0  # requests under the dead prefix (Behaviour.dead_prefix)
    dead_active: int = 0
    dead_max_active: int = 0
    arrivals: list[tuple[str, float]] = field(default_factory=list)  # (path under /rec/, epoch s)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "answered": {str(k): v for k, v in self.answered.items()},
            "hung": self.hung,
            "connections": self.connections,
            "max_connections": self.max_connections,
            "active": self.active,
            "max_active": self.max_active,
            "dead_requests": self.dead_requests,
            "dead_active": self.dead_active,
            "dead_max_active": self.dead_max_active,
        }


@dataclass
class Behaviour:
    delay_ms: float = 0.0
    mode: str = "answer"  # "answer" | "hang"
    error_rate: float = 0.0  # share of requests answered 500
    hang_rate: float = 0.0  # share of requests never answered
    status: int = 200
    retry_after: str | None = None  # sent with every 500
    body: bytes = b"ok"
    id_field: str | None = None  # record this top-level field of JSON bodies (see `/_ids`)
    dead_prefix: str | None = None  # paths under it: a dead endpoint on the same host:port
    dead_mode: str = "hang"  # "hang" | "error" (500 at once), for the paths under dead_prefix


class ReceiverProtocol:
    """The connection handler of the server; one coroutine per connection."""

    def __init__(self, behaviour: Behaviour, seed: int | None = None) -> None:
        self.behaviour = behaviour
        self.stats = Stats()
        self._random = random.Random(seed)
        self._writers: set[asyncio.StreamWriter] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = self.stats
        s.connections += 1
        s.max_connections = max(s.max_connections, s.connections)
        self._writers.add(writer)
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # the client went away or spoke nonsense: drop the connection
        finally:
            s.connections -= 1
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # closed between requests: normal end of a keep-alive connection
        lines = head.decode("latin-1").split("\r\n")
        method, path, version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await _read_body(reader, headers)
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if path.startswith("/_"):
            return await self._control(method, path, writer, keep_alive)
        s = self.stats
        s.requests += 1
        s.paths[path] += 1
        s.active += 1
        s.max_active = max(s.max_active, s.active)
        b = self.behaviour
        if b.dead_prefix and path.startswith(b.dead_prefix):
            return await self._dead(reader, writer, keep_alive)
        if path.startswith("/rec/"):
            s.arrivals.append((path, time.time()))
        return await self._answer(reader, writer, body, keep_alive)

    async def _answer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes, keep_alive: bool
    ) -> bool:
        """A request to the receiver proper (not the dead prefix): as the behaviour says."""
        s, b = self.stats, self.behaviour
        seen = self._id_counter(body) if b.id_field else None
        try:
            roll = self._random.random()
            if b.mode == "hang" or roll < b.hang_rate:
                s.hung += 1
                if seen is not None:
                    seen["hung"] += 1
                await reader.read()  # until the client gives up (or the server closes)
                return False
            if b.delay_ms:
                await asyncio.sleep(b.delay_ms / 1000)
            failing = roll < b.hang_rate + b.error_rate
            status = 500 if failing else b.status
            extra = {"Retry-After": b.retry_after} if failing and b.retry_after else {}
            _write(writer, status, b.body, keep_alive, extra)
            await writer.drain()
            s.answered[status] += 1
            if seen is not None:
                seen[str(status)] += 1
        finally:
            s.active -= 1
        return keep_alive

    async def _dead(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, keep_alive: bool
    ) -> bool:
        """A request to the dead endpoint: held until the client gives up, or answered 500."""
        s = self.stats
        s.dead_requests += 1
        s.dead_active += 1
        s.dead_max_active = max(s.dead_max_active, s.dead_active)
        try:
            if self.behaviour.dead_mode == "hang":
                s.hung += 1
                await reader.read()
                return False
            _write(writer, 500, b"dead", keep_alive)
            await writer.drain()
            s.answered[500] += 1
            return keep_alive
        finally:
            s.active -= 1
            s.dead_active -= 1

    def _id_counter(self, body: bytes) -> Counter[str]:
        """The outcome counter of the id this body carries (`?` when it carries none)."""
        try:
            data = json.loads(body)
            key = str(data[self.behaviour.id_field]) if isinstance(data, dict) else "?"
        except (ValueError, KeyError):
            key = "?"
        return self.stats.ids.setdefault(key, Counter())

    async def _control(self, method: str, path: str, writer: asyncio.StreamWriter, keep_alive: bool) -> bool:
        if path == "/_stats":
            _write(writer, 200, json.dumps(self.stats.as_dict()).encode(), keep_alive)
        elif path == "/_arrivals":
            arrivals, self.stats.arrivals = self.stats.arrivals, []
            _write(writer, 200, json.dumps(arrivals).encode(), keep_alive)
        elif path == "/_ids":
            _write(writer, 200, json.dumps(self.stats.ids).encode(), keep_alive)
        elif path == "/_reset" and method == "POST":
            self.reset()
            _write(writer, 200, b"{}", keep_alive)
        else:
            _write(writer, 404, b"", keep_alive)
        await writer.drain()
        return keep_alive

    def reset(self) -> None:
        """Zero the counters (the open connections and requests still count as open)."""
        old = self.stats
        self.stats = Stats(connections=old.connections, active=old.active, dead_active=old.dead_active)

    def close_all(self) -> None:
        for writer in list(self._writers):
            writer.close()


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return bytes(body)
            body += chunk[:-2]
    length = int(headers.get("content-length") or 0)
    return await reader.readexactly(length) if length else b""


def _write(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    keep_alive: bool,
    extra: dict[str, str] | None = None,
) -> None:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    if status in (204, 304):
        body = b""  # these carry no body, nor a length (RFC 9110 8.6)
    else:
        lines += [f"Content-Length: {len(body)}", "Content-Type: text/plain"]
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


class SlowReceiver:
    """The receiver on 127.0.0.1 in a background thread with its own event loop (for tests)."""

    def __init__(self, port: int = 0, seed: int | None = 0, **behaviour: Any) -> None:
        self.protocol = ReceiverProtocol(Behaviour(**behaviour), seed)
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="slow-receiver", daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def stats(self) -> Stats:
        return self.protocol.stats

    @property
    def behaviour(self) -> Behaviour:
        return self.protocol.behaviour

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> SlowReceiver:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self) -> asyncio.Server:
        return await asyncio.start_server(self.protocol.handle, "127.0.0.1", self._port, backlog=1024)

    def stop(self) -> None:
        async def shut() -> None:
            if self._server is not None:
                self._server.close()
            self.protocol.close_all()
            await asyncio.sleep(0)  # let the handlers see their connections close

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> SlowReceiver:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


async def serve(host: str, port: int, behaviour: Behaviour) -> None:
    protocol = ReceiverProtocol(behaviour, seed=None)
    server = await asyncio.start_server(protocol.handle, host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9100)
    p.add_argument("--delay-ms", type=float, default=100.0, help="answer after this long")
    p.add_argument("--mode", choices=("answer", "hang"), default="answer")
    p.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 500")
    p.add_argument("--hang-rate", type=float, default=0.0, help="share of requests never answered")
    p.add_argument("--retry-after", default=None, help="Retry-After value sent with each 500")
    p.add_argument("--id-field", default=None, help="record this JSON body field per request (GET /_ids)")
    p.add_argument("--dead-prefix", default=None, help="paths under it are a dead endpoint on this port")
    p.add_argument(
        "--dead-mode", choices=("hang", "error"), default="hang", help="how the dead endpoint fails"
    )
    args = p.parse_args(argv)
    behaviour = Behaviour(
        delay_ms=args.delay_ms,
        mode=args.mode,
        error_rate=args.error_rate,
        hang_rate=args.hang_rate,
        retry_after=args.retry_after,
        id_field=args.id_field,
        dead_prefix=args.dead_prefix,
        dead_mode=args.dead_mode,
    )
    uvloop.run(serve(args.host, args.port, behaviour))


if __name__ == "__main__":
    main()
