"""Real processes for the end-to-end tests: the API (`cmd/api.py`) and the worker (`cmd/worker.py`).

Each process runs in its own session (so the dramatiq CLI and its forked children can be killed as
one process group), writes stdout and stderr to a log file, and is stopped with SIGTERM, then
SIGKILL to its group after a bounded wait. Every wait here is a poll with a deadline.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

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
}
# Variables of ours a developer's shell may hold: the tests decide them all.
_OURS = ("REDIS_", "API_", "WORKER_", "TASK_", "SMTP_", "EMAIL_", "DATA_DIR", "LOG_LEVEL", "ENV", "dramatiq_")

ALL: list[Proc] = []  # every process started in this test session (for log tails on failure)
_serial = itertools.count(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    env.update(BASE_ENV)
    env.update(overrides)
    return env


def alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie (Linux /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def kill_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    """The pids of all live descendants of `pid` (Linux /proc), whatever their session."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        out += children
        todo += children
    return out


def poll(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Call `check` until it returns True (-> True) or `timeout` seconds pass (-> False)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


class Proc:
    """One child process with its log file."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}-{next(_serial)}.log"
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                args, cwd=ROOT, env=dict(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.pid = self.popen.pid
        self.started_at = time.time()
        self.stopped_at: float | None = None
        ALL.append(self)

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 60) -> str:
        """The last lines of the log, without the access lines of the tests' status polling."""
        kept = [line for line in self.log().splitlines() if '"GET /api/v1/tasks/' not in line]
        return "\n".join(kept[-lines:])

    def send(self, sig: signal.Signals) -> None:
        if self.running:
            self.popen.send_signal(sig)

    def kill_group(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal the whole process group (the dramatiq CLI and its forked workers)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def wait(self, timeout: float) -> int:
        code = self.popen.wait(timeout)
        self.stopped_at = self.stopped_at or time.time()
        return code

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL to the group after `timeout`; leftovers of the group are killed."""
        self.send(signal.SIGTERM)
        try:
            code = self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            code = self.wait(10)
        self.kill_group()  # a forked child that outlived its parent
        return code

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
    """Start `cmd/worker.py` (it execs the dramatiq CLI). See `wait_worker_ready`."""
    return Proc(name, _python("worker.py"), child_env(REDIS_URL=redis_url, **env), log_dir)


def wait_worker_ready(proc: Proc, processes: int = 1, timeout: float = 30.0) -> None:
    """Every worker process logs this once its consumers and actor threads run."""
    proc.expect_log("worker ready", count=processes, timeout=timeout)


def start_api(redis_url: str, log_dir: Path, name: str = "api", **env: str) -> tuple[Proc, str]:
    """-> (process, base URL), once /ready answers 200."""
    proc, url = launch_api(redis_url, log_dir, name, **env)
    _or_stop([proc], lambda: wait_ready(proc, url))
    return proc, url


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
