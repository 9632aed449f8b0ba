"""Load generation from outside the server: wrk with a Lua POST script, or, when wrk is missing, an
asyncio httpx client with a fixed number of connections. Both bounded by a duration.

Also an open-loop sender (a fixed offered rate, not a closed loop) for the latency scenario.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import BenchError, percentile

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class LoadResult:
    rps: float  # successful (2xx) responses per second
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx responses and socket errors
    tool: str


def _lua_post(body: str) -> str:
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise BenchError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(out: str) -> LoadResult:
    def grab(pattern: str, default: str | None = None) -> str:
        match = re.search(pattern, out)
        if match:
            return match.group(1)
        if default is None:
            raise BenchError(f"unexpected wrk output:\n{out}")
        return default

    requests = int(grab(r"(\d+) requests in"))
    seconds = _ms(grab(r"requests in ([\d.]+(?:us|ms|s|m)),")) / 1000
    non2xx = int(grab(r"Non-2xx or 3xx responses: (\d+)", "0"))
    socket_errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    ok = max(0, requests - non2xx)
    return LoadResult(
        rps=ok / seconds,
        p50_ms=_ms(grab(r"\n\s+50%\s+(\S+)")),
        p99_ms=_ms(grab(r"\n\s+99%\s+(\S+)")),
        requests=requests,
        errors=non2xx + socket_errors,
        tool="wrk",
    )


def run_wrk(url: str, body: str, *, connections: int, seconds: float, workdir: Path) -> LoadResult:
    script = workdir / "post.lua"
    script.write_text(_lua_post(body))
    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "5s"]
    out = subprocess.run(
        [*args, "-s", str(script), url], capture_output=True, text=True, timeout=seconds + 30
    )
    if out.returncode != 0:
        raise BenchError(f"wrk failed ({out.returncode}): {out.stderr or out.stdout}")
    return parse_wrk(out.stdout)


def _result(url: str, latencies: list[float], errors: int, elapsed: float, tool: str) -> LoadResult:
    """A closed loop's figures from its successful requests' latencies (ms) and its errors."""
    if not latencies:
        raise BenchError(f"no successful request to {url}")
    return LoadResult(
        rps=len(latencies) / elapsed,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        requests=len(latencies) + errors,
        errors=errors,
        tool=tool,
    )


async def _closed_loop(url: str, body: bytes, connections: int, seconds: float) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(limits=limits, timeout=5.0) as client:
        deadline = time.monotonic() + seconds

        async def one_connection() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                try:
                    response = await client.post(url, content=body, headers=headers)
                except httpx.HTTPError:
                    errors += 1
                    continue
                if 200 <= response.status_code < 300:
                    latencies.append((time.perf_counter() - t0) * 1000)
                else:
                    errors += 1

        t0 = time.monotonic()
        await asyncio.gather(*(one_connection() for _ in range(connections)))
        elapsed = time.monotonic() - t0
    return _result(url, latencies, errors, elapsed, "httpx")


def closed_loop(url: str, body: str, *, connections: int, seconds: float, workdir: Path) -> LoadResult:
    """wrk when installed, else the asyncio client (which costs more CPU per request: says so)."""
    if shutil.which("wrk"):
        return run_wrk(url, body, connections=connections, seconds=seconds, workdir=workdir)
    return asyncio.run(_closed_loop(url, body.encode(), connections, seconds))


# ---------------------------------------------------------------- open loop (offered rate)


async def _post(
    pool: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]], host: str, port: int, request: bytes
) -> int:
    """One POST on a pooled keep-alive connection -> status; a connection the server closed while
    idle (its keep-alive timeout) is replaced once."""
    for fresh in (False, True):
        reader, writer = pool.pop() if pool and not fresh else await asyncio.open_connection(host, port)
        writer.write(request)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            if fresh:
                raise
            continue
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        pool.append((reader, writer))
        return int(head.split(b" ", 2)[1])
    raise AssertionError("unreachable")


async def _open_loop_http(
    url: str, bodies: list[bytes], rate: float, max_in_flight: int
) -> tuple[dict[int, float], int]:
    # A minimal HTTP/1.1 client on asyncio streams, not httpx.AsyncClient: httpcore 1.0's pool
    # scans every connection (squared) on each request, so once a stall lets the in-flight count
    # grow, its CPU per request rose 1.6 -> 4.6-7 ms here and it fell below the offered rate for
    # the rest of the round; its own queueing was then counted as submit->delivered latency.
    parsed = httpx.URL(url)
    host, port, path = parsed.host, parsed.port or 80, parsed.raw_path.decode()
    sent: dict[int, float] = {}
    errors = 0
    gate = asyncio.Semaphore(max_in_flight)
    pool: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"

    async def one(i: int, body: bytes) -> None:
        nonlocal errors
        request = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
        async with gate:
            sent[i] = time.time()
            try:
                status = await asyncio.wait_for(_post(pool, host, port, request), 10.0)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                errors += 1
                return
            if status >= 300:
                errors += 1

    tasks = []
    t0 = time.monotonic()
    for i, body in enumerate(bodies):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, body)))
    await asyncio.gather(*tasks)
    for _, writer in pool:
        writer.close()
    return sent, errors


async def _raw_closed_loop(url: str, body: bytes, connections: int, seconds: float) -> LoadResult:
    parsed = httpx.URL(url)
    host, port, path = parsed.host, parsed.port or 80, parsed.raw_path.decode()
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    request = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def one_connection() -> None:
        nonlocal errors
        pool: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []  # this connection alone
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            try:
                status = await asyncio.wait_for(_post(pool, host, port, request), 30.0)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
                errors += 1
                continue
            if 200 <= status < 300:
                latencies.append((time.perf_counter() - t0) * 1000)
            else:
                errors += 1
        for _, writer in pool:
            writer.close()

    t0 = time.monotonic()
    await asyncio.gather(*(one_connection() for _ in range(connections)))
    elapsed = time.monotonic() - t0
    return _result(url, latencies, errors, elapsed, "asyncio streams")


def raw_closed_loop(url: str, body: str, *, connections: int, seconds: float) -> LoadResult:
    """A closed loop on keep-alive connections with the minimal asyncio client of the open loop
    (`_post`): a fraction of httpx.AsyncClient's CPU per request, so on a small machine the load
    generator takes less from the server than httpx does. Each request is waited for, so when
    it returns the server has nothing of this load in flight."""
    return asyncio.run(_raw_closed_loop(url, body.encode(), connections, seconds))


def open_loop_http(
    url: str, bodies: list[bytes], rate: float, max_in_flight: int = 64
) -> tuple[dict[int, float], int]:
    """POST bodies[i] at t0 + i/rate -> ({i: wall-clock send time}, errors)."""
    return asyncio.run(_open_loop_http(url, bodies, rate, max_in_flight))


def open_loop_calls(count: int, rate: float, send: Callable[[int], None]) -> dict[int, float]:
    """Call send(i) at t0 + i/rate from this thread -> {i: wall-clock send time}."""
    sent: dict[int, float] = {}
    t0 = time.monotonic()
    for i in range(count):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent[i] = time.time()
        send(i)
    return sent
