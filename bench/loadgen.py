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
    if not latencies:
        raise BenchError(f"no successful request to {url}")
    return LoadResult(
        rps=len(latencies) / elapsed,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        requests=len(latencies) + errors,
        errors=errors,
        tool="httpx",
    )


def closed_loop(url: str, body: str, *, connections: int, seconds: float, workdir: Path) -> LoadResult:
    """wrk when installed, else the asyncio client (which costs more CPU per request: says so)."""
    if shutil.which("wrk"):
        return run_wrk(url, body, connections=connections, seconds=seconds, workdir=workdir)
    return asyncio.run(_closed_loop(url, body.encode(), connections, seconds))


# ---------------------------------------------------------------- open loop (offered rate)


async def _open_loop_http(
    url: str, bodies: list[bytes], rate: float, max_in_flight: int
) -> tuple[dict[int, float], int]:
    sent: dict[int, float] = {}
    errors = 0
    gate = asyncio.Semaphore(max_in_flight)
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:

        async def one(i: int, body: bytes) -> None:
            nonlocal errors
            async with gate:
                sent[i] = time.time()
                try:
                    response = await client.post(url, content=body, headers=headers)
                except httpx.HTTPError:
                    errors += 1
                    return
                if response.status_code >= 300:
                    errors += 1

        tasks = []
        t0 = time.monotonic()
        for i, body in enumerate(bodies):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, body)))
        await asyncio.gather(*tasks)
    return sent, errors


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
