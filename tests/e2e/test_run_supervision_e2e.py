"""`make run` watches its embedded Redis (cmd/run.py as a real process tree: redis-server, the API,
the dramatiq CLI and its fork): a redis-server killed with SIGKILL comes back on the same data
directory and socket, with the tasks it held, and the API and worker carry on; one that keeps
dying stops everything, with a message and exit code 1, and leaves no process behind.
"""

from __future__ import annotations

import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e import support
from tests.e2e.support import Proc, get_task, submit, wait_for_status
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]


def redis_pid(run: Proc) -> int | None:
    for pid in support.descendants(run.pid):
        try:
            if b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    return None


def replaced(run: Proc, old: int) -> int:
    """Wait for the redis-server that replaced `old`; -> its pid."""
    seen: list[int] = []

    def new_one() -> bool:
        if not run.running:
            raise AssertionError(f"run exited with {run.returncode}:\n{run.tail()}")
        pid = redis_pid(run)
        seen[:] = [pid] if pid else []
        return pid is not None and pid != old

    assert support.poll(new_one, 20), f"no new redis-server after killing {old}:\n{run.tail()}"
    return seen[0]


@pytest.fixture
def run(tmp_path_factory: pytest.TempPathFactory, e2e_logs: Path) -> Iterator[tuple[Proc, str, Path]]:
    data_dir = tmp_path_factory.mktemp("sup")  # short: the Redis unix socket lives under it
    port = support.free_port()
    env = support.child_env(DATA_DIR=str(data_dir), API_PORT=str(port))
    proc = Proc("run-supervised", [sys.executable, str(support.ROOT / "cmd" / "run.py")], env, e2e_logs)
    base_url = f"http://127.0.0.1:{port}"
    everyone: list[int] = []
    try:
        support.wait_ready(proc, base_url, timeout=40)
        yield proc, base_url, data_dir / "redis"
    finally:
        everyone = support.descendants(proc.pid)
        if proc.running:
            proc.stop(timeout=25)
        for pid in everyone:
            support.kill_pid(pid)


def test_a_killed_redis_is_restarted_with_its_data_then_repeated_deaths_stop_everything(
    run: tuple[Proc, str, Path],
) -> None:
    proc, base_url, redis_dir = run
    with Receiver() as receiver, httpx.Client(base_url=base_url, timeout=10) as api:
        kept = submit(api, {"url": receiver.url("/later"), "delay": "1h"})
        first = redis_pid(proc)
        assert first is not None
        children = support.descendants(proc.pid)

        support.kill_pid(first)

        replaced(proc, first)
        proc.expect_log("embedded Redis died (killed by SIGKILL); restarting it", timeout=10)
        proc.expect_log("embedded Redis is back", timeout=20)
        support.wait_ready(proc, base_url, timeout=20)
        # The append-only file brought the task back; the API and the worker reconnected.
        assert get_task(api, kept)["status"] == "scheduled"
        done = submit(api, {"url": receiver.url("/after"), "method": "POST", "body": "hi"})
        wait_for_status(api, done, "completed", timeout=20)
        assert [r.path for r in receiver.requests] == ["/after"]
        # The files of the restarted Redis are private too.
        assert stat.S_IMODE(redis_dir.stat().st_mode) == 0o700
        for path in redis_dir.iterdir():
            assert stat.S_IMODE(path.lstat().st_mode) & 0o077 == 0, path

    # Keep killing it: the 5th death within 60 s (the first one counts) stops everything.
    children += support.descendants(proc.pid)
    pid = redis_pid(proc)
    for death in range(2, 6):
        assert pid is not None
        support.kill_pid(pid)
        if death < 5:
            pid = replaced(proc, pid)

    assert proc.wait(timeout=40) == 1, proc.tail()
    log = proc.log()
    assert "embedded Redis died 5 times within 60 s" in log, proc.tail()
    assert "stopping everything" in log
    assert support.poll(lambda: not any(support.alive(p) for p in children), timeout=10), [
        p for p in children if support.alive(p)
    ]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base_url}/health", timeout=2)
