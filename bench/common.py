"""Shared pieces of the harness: processes, Redis, statistics, machine facts."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import psutil
import redis

from queue_system import testing
from queue_system.local.embedded import EmbeddedRedis
from queue_system.testing import free_port, port_open, wait_until

__all__ = ["free_port", "port_open", "wait_until"]  # the scenarios import them from here

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PY = sys.executable


class BenchError(RuntimeError):
    """A scenario could not be measured (a process died, a drain did not finish in time)."""


def log(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    sys.stderr.write(f"[bench {stamp}] {message}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------- waiting and processes
# The helpers the end-to-end tests use too (queue_system.testing); a scenario that times out raises
# TimeoutError, which the driver reports as a failed scenario like a BenchError.


class Proc(testing.Proc):
    """A process of the harness (see queue_system.testing.Proc), with what the scenarios ask of it."""

    def check_alive(self) -> None:
        if not self.running:
            raise BenchError(f"{self.name} exited with code {self.returncode}:\n{self.tail(30)}")

    def rss_bytes(self, *, children: bool = True) -> int:
        """RSS of the process and (by default) of its descendants."""
        try:
            proc = psutil.Process(self.pid)
            procs = [proc, *proc.children(recursive=True)] if children else [proc]
            total = 0
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            return total
        except psutil.Error:
            return 0


def spawn(name: str, args: list[str], *, env: Mapping[str, str], logs: Path, cwd: Path = ROOT) -> Proc:
    return Proc(name, args, env, logs / f"{name}.log", cwd=cwd, append=True)


@contextlib.contextmanager
def running(proc: Proc, timeout: float = 20.0) -> Iterator[Proc]:
    try:
        yield proc
    finally:
        proc.stop(timeout)


# Set by `--env K=V` (bench/run.py): added to every child, ours and baselines alike, to try a knob.
EXTRA_ENV: dict[str, str] = {}


def base_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: quiet logs, and the repository on PYTHONPATH for the
    `bench.*` modules the children import (the sink, the bare baselines, the noop kind)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "API_", "REDIS_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["LOG_LEVEL"] = "WARNING"
    env["ENV"] = "production"
    # The sinks listen on loopback, which the egress guard blocks by default; and production asks
    # for API keys, which the load generators do not send (try one with `--env API_KEYS=...`).
    env["EGRESS_ALLOW_CIDRS"] = "127.0.0.0/8"
    env["API_AUTH"] = "disabled"
    # Not on the worker's fixed health and metrics ports: several workers run side by side here.
    env["WORKER_HEALTH_PORT"] = "0"
    env["WORKER_METRICS_PORT"] = "0"
    env.update(EXTRA_ENV)
    env.update(extra)
    return env


# ---------------------------------------------------------------- Redis


@contextlib.contextmanager
def embedded_redis(name: str) -> Iterator[tuple[str, redis.Redis]]:
    """A fresh redis-server for one scenario, on TCP 127.0.0.1 (as most deployments reach Redis)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"qsb-{name[:8]}-", dir="/tmp"))
    server = EmbeddedRedis(tmp, persist=False, port=free_port())
    url = server.start()
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        yield url, client
    finally:
        client.close()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def redis_cpu_s(client: redis.Redis) -> float:
    """CPU seconds the redis-server process has used (user + system), as it reports them."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by a process and its live descendants."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


class ForeignLoad:
    """Samples, once a second, the CPU used by processes that are not this harness or its children
    (other people's work on a shared machine): the noise the ratios have to live with."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="foreign-load", daemon=True)
        self._seen: dict[int, float] = {}
        self.cpu_s = 0.0
        self.t0 = time.monotonic()
        self.peak_cores = 0.0

    def __enter__(self) -> ForeignLoad:
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()

    def cores(self) -> float:
        """Average cores used by foreign processes since the start."""
        return self.cpu_s / max(time.monotonic() - self.t0, 1e-3)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            before = self.cpu_s
            self._sample()
            self.peak_cores = max(self.peak_cores, self.cpu_s - before)

    def _sample(self, *, first: bool = False) -> None:
        me = psutil.Process()
        ours = {me.pid} | {c.pid for c in me.children(recursive=True)}
        for proc in psutil.process_iter(["pid"]):
            pid = proc.info["pid"]
            if pid in ours:
                continue
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            now = t.user + t.system
            last = self._seen.get(pid)
            if last is None and not first:
                try:
                    new = proc.create_time() >= time.time() - 1.5
                except psutil.Error:
                    new = False
                last = 0.0 if new else now
            if last is not None:
                self.cpu_s += max(0.0, now - last)
            self._seen[pid] = now


# ---------------------------------------------------------------- statistics


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# ---------------------------------------------------------------- machine facts


def code_fingerprint() -> str:
    """A hash of the product's code as it is on disk now (others may edit it during a run)."""
    digest = hashlib.sha1(usedforsecurity=False)
    for top in ("queue_system", "cmd"):
        for path in sorted((ROOT / top).rglob("*.py")):
            digest.update(str(path.relative_to(ROOT)).encode())
            with contextlib.suppress(OSError):
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def machine_facts() -> dict[str, object]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    dirty = [line for line in _git("status", "--porcelain").splitlines() if line.strip()]
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "nproc": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "git": _git("rev-parse", "--short", "HEAD"),
        "git_dirty_files": len(dirty),
        "code_fingerprint": code_fingerprint(),
        "versions": {
            n: _version(n)
            for n in ("litestar", "uvicorn", "dramatiq", "redis", "httpx", "msgspec", "celery", "rq", "arq")
        },
        "hiredis": _version("hiredis"),
        "wrk": shutil.which("wrk") or "-",
        "nginx": shutil.which("nginx") or "-",
    }
