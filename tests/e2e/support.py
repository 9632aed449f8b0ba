"""Real processes for the end-to-end tests: the API (`cmd/api.py`) and the worker (`cmd/worker.py`).

Each process runs in its own session (so the dramatiq CLI and its forked children can be killed as
one process group), writes stdout and stderr to a log file, and is stopped with SIGTERM, then
SIGKILL to its group after a bounded wait (`queue_system.testing`, shared with the benchmarks).
Every wait here is a poll with a deadline.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from queue_system import testing
from queue_system.testing import alive, descendants, free_port, kill_pid, poll

__all__ = ["alive", "descendants", "free_port", "kill_pid", "poll"]  # used by the tests as support.*

ROOT = Path(__file__).resolve().parents[2]

# Short intervals so retries and recoveries happen within a test's time budget.
BASE_ENV = {
    "ENV": "development",
    "LOG_LEVEL": "INFO",
    "API_HOST": "127.0.0.1",
    "WORKER_PROCESSES": "1",
    "WORKER_CONCURRENCY": "4",
    "WORKER_RETRY_INTERVAL": "300ms",
    "WORKER_REQUEST_TIMEOUT": "1s",
    "WORKER_POLL_INTERVAL": "50ms",
    # The receivers listen on 127.0.0.1, which the egress guard blocks by default (as `make run` does).
    "EGRESS_ALLOW_CIDRS": "127.0.0.0/8",
    # Not on the fixed default ports (other runs share the machine); launch_worker picks free ones.
    "WORKER_HEALTH_PORT": "0",
    "WORKER_METRICS_PORT": "0",
}
# Variables of ours a developer's shell may hold: the tests decide them all.
_OURS = (
    "REDIS_",
    "API_",
    "WORKER_",
    "TASK_",
    "SMTP_",
    "EMAIL_",
    "EGRESS_",
    "WEBHOOK_",
    "DATA_DIR",
    "DEV_INBOX",
    "QUEUE_SYSTEM_",
    "LOG_LEVEL",
    "ENV",
    "dramatiq_",
)

ALL: list[Proc] = []  # every process started in this test session (for log tails on failure)
_serial = itertools.count(1)


def child_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    env.update(BASE_ENV)
    env.update(overrides)
    return env


class Proc(testing.Proc):
    """A process of a test: run from the repository, logged to `log_dir`, listed in ALL."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log_dir: Path) -> None:
        super().__init__(name, args, env, log_dir / f"{name}-{next(_serial)}.log", cwd=ROOT)
        ALL.append(self)

    def tail(self, lines: int = 60) -> str:
        """The last lines of the log, without the access lines of the tests' status polling."""
        kept = [line for line in self.log().splitlines() if '"GET /api/v1/tasks/' not in line]
        return "\n".join(kept[-lines:])

    def expect_log(self, text: str, count: int = 1, timeout: float = 30.0) -> None:
        def seen() -> bool:
            if not self.running:
                raise AssertionError(f"{self.name} exited with {self.returncode}:\n{self.tail()}")
            return self.log().count(text) >= count

        if not poll(seen, timeout, interval=0.1):
            raise AssertionError(f"{self.name}: no {text!r} within {timeout}s:\n{self.tail()}")


def _python(script: str) -> list[str]:
    return [sys.executable, str(ROOT / "cmd" / script)]


def wait_ready(proc: Proc, base_url: str, timeout: float = 30.0) -> None:
    def ready() -> bool:
        if not proc.running:
            raise AssertionError(f"{proc.name} exited with {proc.returncode}:\n{proc.tail()}")
        try:
            return httpx.get(f"{base_url}/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    if not poll(ready, timeout, interval=0.1):
        raise AssertionError(f"{proc.name}: /ready did not answer 200 within {timeout}s:\n{proc.tail()}")


def launch_api(redis_url: str, log_dir: Path, name: str = "api", **env: str) -> tuple[Proc, str]:
    """Start `cmd/api.py` on a free port; -> (process, base URL). See `wait_ready`."""
    port = free_port()
    full = child_env(REDIS_URL=redis_url, API_PORT=str(port), **env)
    return Proc(name, _python("api.py"), full, log_dir), f"http://127.0.0.1:{port}"


def launch_worker(redis_url: str, log_dir: Path, name: str = "worker", **env: str) -> Proc:
    """Start `cmd/worker.py` (the dramatiq CLI's master), its health and metrics on free ports.
    See `wait_worker_ready`."""
    ports = {"WORKER_HEALTH_PORT": str(free_port()), "WORKER_METRICS_PORT": str(free_port())}
    return Proc(name, _python("worker.py"), child_env(REDIS_URL=redis_url, **(ports | env)), log_dir)


def wait_worker_ready(proc: Proc, processes: int = 1, timeout: float = 30.0) -> None:
    """Every worker process logs this once its consumers and actor threads run."""
    proc.expect_log("worker ready", count=processes, timeout=timeout)


def start_api(redis_url: str, log_dir: Path, name: str = "api", **env: str) -> tuple[Proc, str]:
    """-> (process, base URL), once /ready answers 200."""
    proc, url = launch_api(redis_url, log_dir, name, **env)
    _or_stop([proc], lambda: wait_ready(proc, url))
    return proc, url


@contextlib.contextmanager
def api_only(redis_url: str, log_dir: Path, name: str = "api", **env: str) -> Iterator[str]:
    """An API process of its own with no worker, stopped on the way out; -> its base URL."""
    proc, base_url = start_api(redis_url, log_dir, name, **env)
    try:
        yield base_url
    finally:
        proc.stop()


@contextlib.contextmanager
def api_alone(redis_url: str, log_dir: Path, name: str) -> Iterator[httpx.Client]:
    """A client of an API process of its own (for modules that start and stop workers themselves)."""
    with api_only(redis_url, log_dir, name) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def start_worker(redis_url: str, log_dir: Path, name: str = "worker", **env: str) -> Proc:
    proc = launch_worker(redis_url, log_dir, name, **env)
    _or_stop([proc], lambda: wait_worker_ready(proc, int(child_env(**env)["WORKER_PROCESSES"])))
    return proc


def _or_stop(procs: list[Proc], wait: Callable[[], None]) -> None:
    try:
        wait()
    except BaseException:
        for proc in procs:
            proc.stop(5)
        raise


class Stack:
    """An API and a worker against one Redis, started side by side."""

    def __init__(self, redis_url: str, log_dir: Path, **env: str) -> None:
        self.worker = launch_worker(redis_url, log_dir, **env)
        self.api, self.base_url = launch_api(redis_url, log_dir, **env)
        processes = int(child_env(**env)["WORKER_PROCESSES"])

        def both() -> None:
            wait_ready(self.api, self.base_url)
            wait_worker_ready(self.worker, processes)

        _or_stop([self.api, self.worker], both)

    def stop(self) -> None:
        self.api.stop()
        self.worker.stop()


@contextlib.contextmanager
def stack(redis_url: str, log_dir: Path, **env: str) -> Iterator[Stack]:
    running = Stack(redis_url, log_dir, **env)
    try:
        yield running
    finally:
        running.stop()


class LocalRun:
    """`cmd/run.py` (the whole local stack in one process tree) and the children it was seen to start."""

    def __init__(self, proc: Proc) -> None:
        self.proc = proc
        self.children: list[int] = []

    def note_children(self) -> list[int]:
        """Remember the processes below run.py now, so they are killed even if run.py leaves them."""
        self.children = descendants(self.proc.pid)
        return self.children


@contextlib.contextmanager
def local_run(name: str, env: Mapping[str, str], log_dir: Path) -> Iterator[LocalRun]:
    """Start `cmd/run.py`; on the way out stop it and kill any child noted that outlived it."""
    run = LocalRun(Proc(name, _python("run.py"), env, log_dir))
    try:
        yield run
    finally:
        if run.proc.running:
            run.proc.stop(timeout=25)
        for pid in run.children:
            if alive(pid):
                kill_pid(pid)


# -- the API, seen from a client ---------------------------------------------------------------


def submit(client: httpx.Client, body: Mapping[str, Any]) -> str:
    """POST a task; -> its id. Asserts 201 and the Location header."""
    response = client.post("/api/v1/tasks", json=body)
    assert response.status_code == 201, response.text
    task_id = str(response.json()["id"])
    assert response.headers["location"] == f"/api/v1/tasks/{task_id}"
    return task_id


def get_task(client: httpx.Client, task_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/tasks/{task_id}")
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()
    return task


FINAL = frozenset({"completed", "failed", "cancelled"})


def wait_for_task(
    client: httpx.Client,
    task_id: str,
    check: Callable[[dict[str, Any]], bool],
    timeout: float,
    what: str = "the condition",
) -> dict[str, Any]:
    """Poll GET /api/v1/tasks/{id} until `check(task)`; -> the task. Fails after `timeout` s."""
    last: dict[str, Any] = {}

    def done() -> bool:
        nonlocal last
        last = get_task(client, task_id)
        return check(last)

    if not poll(done, timeout):
        raise AssertionError(f"task {task_id}: no {what} within {timeout}s; last seen: {last}")
    return last


def wait_for_status(
    client: httpx.Client, task_id: str, statuses: str | tuple[str, ...], timeout: float = 10.0
) -> dict[str, Any]:
    """Poll until the task's status is one of `statuses`; fail at once on another final status."""
    wanted = (statuses,) if isinstance(statuses, str) else statuses

    def reached(task: dict[str, Any]) -> bool:
        if task["status"] in wanted:
            return True
        if task["status"] in FINAL:
            raise AssertionError(f"task {task_id} ended {task['status']}, expected {wanted}: {task}")
        return False

    return wait_for_task(client, task_id, reached, timeout, what=f"status in {wanted}")


def timestamp(text: str) -> float:
    """An RFC 3339 time of the API (`...Z`) -> epoch seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def outcomes(task: Mapping[str, Any]) -> list[str]:
    return [a["outcome"] for a in task["attempt_history"]]
