"""Helpers for driving real processes, shared by the end-to-end tests and the benchmarks.

Child processes in their own sessions (so stopping one stops the children it forked, and nothing
else), free ports on 127.0.0.1, and waiting that is always bounded. Standard library only; nothing
of the product is imported, so it can start the product from outside, as an operator would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    """True if something accepts connections on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def poll(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Call `check` until it returns True (-> True) or `timeout` seconds pass (-> False)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def wait_until(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.02) -> float:
    """Poll `check` until true; -> seconds waited. Raises TimeoutError naming `what` after `timeout`."""
    t0 = time.monotonic()
    if not poll(check, timeout, interval):
        raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
    return time.monotonic() - t0


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


class Proc:
    """One child process in its own session, its stdout and stderr in a log file."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: Mapping[str, str],
        log_path: Path,
        *,
        cwd: Path | None = None,
        append: bool = False,
    ) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab" if append else "wb") as log:
            self.popen = subprocess.Popen(
                args,
                cwd=cwd,
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid = self.popen.pid
        self.started_at = time.time()
        self.stopped_at: float | None = None

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def send(self, sig: signal.Signals) -> None:
        if self.running:
            self.popen.send_signal(sig)

    def kill_group(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal the whole process group: the child and what it forked (the group it leads)."""
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
