"""The embedded redis-server (queue_system/local/embedded.py), as a real process: its files are private
(a 0700 directory, 0600 files, a 0700 socket), an older run's loose modes are tightened with a
log line, and RedisKeeper restarts one that died on the same address, giving up after repeated
deaths."""

from __future__ import annotations

import itertools
import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from loguru import logger

from queue_system.local.embedded import EmbeddedRedis, RedisKeeper

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def logs() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="INFO")
    try:
        yield lines
    finally:
        logger.remove(sink)


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    # A short path: the unix socket lives under it (108 bytes at most).
    embedded = EmbeddedRedis(tmp_path_factory.mktemp("er") / "redis", persist=True)
    try:
        yield embedded
    finally:
        embedded.stop()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_data_directory_files_and_socket_are_private(server: EmbeddedRedis) -> None:
    os.umask(0o022)  # the usual umask, which made them 0755/0644 before
    server.start()
    with redis.Redis.from_url(server.url) as client:
        client.hset("qs:task:t1", mapping={"secret": "whsec_x"})
        client.bgrewriteaof()  # a rewrite writes new files: they are private too
        client.save()  # and an RDB
    server.stop()  # SHUTDOWN SAVE: the files as a normal stop leaves them
    files = [p for p in server.data_dir.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"appendonly.aof", "dump.rdb", "redis.log"}, files
    assert mode(server.data_dir) == 0o700
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}

    server.start()
    assert stat.S_ISSOCK(server.socket.lstat().st_mode)
    assert mode(server.socket) & 0o077 == 0


def test_an_older_run_s_loose_modes_are_tightened_with_a_log_line(
    server: EmbeddedRedis, logs: list[str]
) -> None:
    server.data_dir.mkdir(mode=0o755)
    server.data_dir.chmod(0o755)
    aof = server.data_dir / "appendonly.aof"
    aof.write_bytes(b"")
    aof.chmod(0o644)
    (server.data_dir / "redis.log").write_text("")
    (server.data_dir / "redis.log").chmod(0o664)

    server.start()

    assert mode(server.data_dir) == 0o700
    assert mode(aof) == 0o600 and mode(server.data_dir / "redis.log") == 0o600
    assert any("tightened the permissions of 3 path(s)" in line for line in logs), logs
    logs.clear()
    server.stop()
    server.start()  # nothing loose any more: no line
    assert not any("tightened" in line for line in logs), logs


def test_the_keeper_restarts_a_killed_redis_on_the_same_address_with_its_data(
    server: EmbeddedRedis, logs: list[str]
) -> None:
    url = server.start()
    keeper = RedisKeeper(server)
    with redis.Redis.from_url(url) as client:
        client.set("kept", "yes")
    assert keeper.check() is None and keeper.restarts == 0

    assert server.process is not None
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(10)
    assert keeper.check() is None

    assert keeper.restarts == 1 and server.running and server.url == url
    with redis.Redis.from_url(url) as client:
        assert client.get("kept") == b"yes"  # the append-only file brought it back
    assert any("embedded Redis died (killed by SIGKILL); restarting it" in line for line in logs), logs


def test_the_keeper_gives_up_after_repeated_deaths_within_its_window(server: EmbeddedRedis) -> None:
    now = [1000.0]
    server.start()
    keeper = RedisKeeper(server, max_deaths=3, window_s=60, clock=lambda: now[0])

    def kill() -> None:
        assert server.process is not None
        server.process.kill()
        server.process.wait(10)

    kill()
    assert keeper.check() is None
    now[0] += 61  # a death long ago no longer counts
    kill()
    assert keeper.check() is None
    now[0] += 1
    kill()
    assert keeper.check() is None
    now[0] += 1
    kill()
    verdict = keeper.check()

    assert verdict is not None and "died 3 times within 60 s" in verdict and "SIGKILL" in verdict
    assert not server.running and keeper.restarts == 3


def test_a_restart_that_fails_counts_as_a_death(server: EmbeddedRedis) -> None:
    server.start()
    keeper = RedisKeeper(server, max_deaths=2)
    server.stop()
    # Refused at start: an append-only file Redis cannot load.
    (server.data_dir / "appendonly.aof").write_bytes(b"*9\r\ngarbage")

    verdict = keeper.check()

    assert verdict is not None and "the restart failed" in verdict
    assert keeper.restarts == 0


class _Flatline(EmbeddedRedis):
    """A server whose every check finds it dead and whose restarts succeed: the keeper's window
    logic alone (the real process is what the tests above use)."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.started = 0

    @property
    def running(self) -> bool:
        return False

    def death(self) -> str:
        return "killed by SIGKILL"

    def start(self, timeout: float = 15.0) -> str:
        self.started += 1
        return self.url


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0, max_value=40, allow_nan=False), min_size=1, max_size=30),
    max_deaths=st.integers(min_value=1, max_value=6),
    window_s=st.sampled_from([1.0, 10.0, 60.0]),
)
def test_the_keeper_gives_up_exactly_at_the_first_death_with_too_many_in_its_window(
    gaps: list[float], max_deaths: int, window_s: float
) -> None:
    """Deaths at any times: the keeper restarts until the first death that makes `max_deaths`
    within the `window_s` before it (inclusive), and gives up then, not earlier or later."""
    times = list(itertools.accumulate(gaps))
    expected = next(
        (i for i, t in enumerate(times) if sum(t - window_s <= u <= t for u in times[: i + 1]) >= max_deaths),
        None,
    )
    now = [0.0]
    server = _Flatline(Path("/nonexistent/qs-keeper"))
    keeper = RedisKeeper(server, max_deaths=max_deaths, window_s=window_s, clock=lambda: now[0])
    for i, t in enumerate(times):
        now[0] = t
        verdict = keeper.check()
        if verdict is not None:
            assert i == expected, (times, i, expected)
            assert f"died {max_deaths} times within {window_s:g} s" in verdict
            assert server.started == i
            return
    assert expected is None, (times, expected)
    assert server.started == len(times)
