"""Worker health: each worker process reports its state to a file once a second; the master judges.

A worker process (`HealthReporting`, a Dramatiq middleware) writes `status-{pid}.json` into the
instance's status directory (`QUEUE_SYSTEM_WORKER_DIR`, set by worker/launch.py): its consumers
(alive, seconds since each last polled Redis), worker threads, tasks in flight, its Dramatiq
heartbeat as Redis holds it, and whether Redis answers and takes a write (a full or read-only Redis
answers every read: storage/failures.py's probe and classification say what it refused). The master
reads the files (`read_statuses`) and `judge` says what they mean: healthy, unhealthy for now
(Redis away or refusing writes, starting, stopping), or
stalled (a consumer died or stopped polling while Redis answers, or a process stopped reporting):
the master then stops the instance with a non-zero exit, so its supervisor restarts it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dramatiq
import redis
from loguru import logger

from queue_system.errors import StorageError
from queue_system.storage import dramatiq_wire
from queue_system.storage.connection import RedisTarget, sync_client
from queue_system.storage.failures import classify, probe_writes_sync
from queue_system.worker.instance import DIR_VARIABLE, status_dir
from queue_system.worker.metrics import WorkerMetrics, process_stopped

REPORT_EVERY_S = 1.0
# A process whose status file is older than this is hung: its reporter writes every second, after
# a Redis probe that times out in 2 s (a handler holding the GIL this long starves it too).
STATUS_STALE_S = 10.0
# A consumer polls Redis at least every WORKER_POLL_TIMEOUT (100 ms) when idle; after a Redis
# outage Dramatiq restarts it within 3 s. Not polling for this long while Redis answers: stalled.
CONSUMER_STALE_S = 10.0


class HealthReporting(dramatiq.Middleware):
    """Runs the status reporter of one worker process from boot to shutdown."""

    def __init__(
        self,
        target: RedisTarget,
        in_flight: Callable[[], int],
        metrics: Callable[[], WorkerMetrics | None],
        probe_key: str,
    ) -> None:
        self.target = target
        self.probe_key = probe_key
        self.in_flight = in_flight
        self.metrics = metrics
        self.reporter: Reporter | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        directory = os.environ.get(DIR_VARIABLE)
        if not directory:  # run outside `queue-system worker` (a bare dramatiq CLI): nobody reads it
            return
        client = sync_client(self.target, decode_responses=True, socket_connect_timeout=2, socket_timeout=2)
        heartbeats = dramatiq_wire.heartbeats(broker.namespace)  # type: ignore[attr-defined]
        probe = Probe(client, heartbeats, broker.broker_id, self.probe_key)  # type: ignore[attr-defined]
        self.reporter = Reporter(status_dir(Path(directory)), worker, probe, self.in_flight, self.metrics())
        self.reporter.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self.reporter is not None:
            self.reporter.stopping = True
            self.reporter.write()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        if self.reporter is not None:  # under `queue-system worker`: the metrics directory is set
            self.reporter.stop()
            with contextlib.suppress(OSError):
                process_stopped(os.getpid())


@dataclass
class Probe:
    """This process's Dramatiq heartbeat as Redis holds it, and a write (`probe_key`, with an
    expiry); `error` says what failed: Redis away, or answering but refusing writes."""

    client: redis.Redis
    heartbeats: str
    broker_id: str
    probe_key: str
    ok_since: float | None = None
    error: str | None = None

    def heartbeat_ms(self) -> int | None:
        try:
            score: float | None = self.client.zscore(self.heartbeats, self.broker_id)  # type: ignore[assignment]
            probe_writes_sync(self.client, self.probe_key)
            error = None
        except redis.RedisError as exc:  # the read failed: Redis away (or worse)
            self.ok_since, self.error = None, str(classify(exc))
            return None
        except StorageError as exc:  # the read worked, the write was refused (full, read-only ...)
            error = str(exc)
        if error is not None:
            self.ok_since = None
        elif self.ok_since is None:
            self.ok_since = time.time()
        self.error = error
        return int(score) if score is not None else None


@dataclass
class Reporter:
    directory: Path
    worker: dramatiq.Worker
    probe: Probe
    in_flight: Callable[[], int]
    metrics: WorkerMetrics | None
    stopping: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def path(self) -> Path:
        return self.directory / f"status-{os.getpid()}.json"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._loop, name="qs-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.metrics is not None:
            self.metrics.flush()  # the last attempts: a stopped process's counters stay in its files
        self.path.unlink(missing_ok=True)
        self.probe.client.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.write()
            except Exception:  # the reporter must outlive any one bad second
                logger.exception("health report failed")
            self._stop.wait(REPORT_EVERY_S)

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        consumers = {}
        for queue, thread in list(self.worker.consumers.items()):
            polled = getattr(getattr(thread, "consumer", None), "polled_at", None)
            consumers[queue] = {
                "alive": thread.is_alive(),
                "polled_ago_s": round(now - polled, 3) if polled is not None else None,
            }
        threads = list(self.worker.workers)
        in_flight = self.in_flight()
        if self.metrics is not None:
            self.metrics.in_flight.set(in_flight)
            self.metrics.flush()  # the attempts of the last second (worker/metrics.py)
        return {
            "pid": os.getpid(),
            "at": time.time(),
            "state": "stopping" if self.stopping else "running",
            "consumers": consumers,
            "threads": {"alive": sum(t.is_alive() for t in threads), "total": len(threads)},
            "in_flight": in_flight,
            "heartbeat_at_ms": self.probe.heartbeat_ms(),
            "redis_error": self.probe.error,
            "redis_ok_since": self.probe.ok_since,
        }

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.snapshot()))
        tmp.replace(self.path)  # atomic: the master never reads half a file


def read_statuses(directory: Path) -> list[dict[str, Any]]:
    """The latest status of each process that still exists."""
    out = []
    for path in sorted(directory.glob("status-*.json")):
        try:
            status = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # replaced or removed while we read it
        if Path(f"/proc/{status.get('pid')}").exists():
            out.append(status)
    return out


@dataclass(frozen=True, slots=True)
class Stalled:
    pid: int
    reason: str
    hung: bool  # the process stopped reporting at all: it will not stop gracefully


@dataclass(frozen=True, slots=True)
class Verdict:
    healthy: bool
    reasons: list[str]
    stalled: list[Stalled]
    processes: list[dict[str, Any]]

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": "ok" if self.healthy else "unavailable"}
        if self.reasons:
            out["reasons"] = self.reasons
        out["processes"] = self.processes
        return out


def judge(statuses: list[dict[str, Any]], expected: int, now: float) -> Verdict:
    """What the processes' statuses mean, at epoch time `now`."""
    reasons: list[str] = []
    stalled: list[Stalled] = []
    for status in statuses:
        pid = int(status["pid"])
        age = now - float(status["at"])
        if age > STATUS_STALE_S:
            stalled.append(Stalled(pid, f"process {pid} has not reported for {age:.0f}s", hung=True))
            continue
        if status["state"] == "stopping":
            reasons.append(f"process {pid} is stopping")
            continue
        if status["redis_error"]:  # what Redis refused, classified (not a stall: a restart cannot help)
            reasons.append(f"process {pid}: {status['redis_error']}")
            continue
        problem = _consumer_problem(status, now)
        if problem:
            stalled.append(Stalled(pid, f"process {pid}: {problem}", hung=False))
        elif status["heartbeat_at_ms"] is None:  # its consumers have not reached Redis yet
            reasons.append(f"process {pid}: no Dramatiq heartbeat yet")
    reporting = sum(1 for s in statuses if now - float(s["at"]) <= STATUS_STALE_S)
    if reporting < expected:
        reasons.append(f"{reporting} of {expected} worker processes reporting")
    reasons += [s.reason for s in stalled]
    return Verdict(not reasons, reasons, stalled, [_summary(s, now) for s in statuses])


def _consumer_problem(status: dict[str, Any], now: float) -> str | None:
    if status["threads"]["total"] and not status["threads"]["alive"]:
        return "every worker thread died"
    ok_since = status["redis_ok_since"]
    judged = ok_since is not None and now - float(ok_since) > CONSUMER_STALE_S
    for queue, consumer in sorted(status["consumers"].items()):
        if not consumer["alive"]:
            return f"the consumer of {queue} died"
        ago = consumer["polled_ago_s"]
        if judged and ago is not None and ago > CONSUMER_STALE_S:
            return f"the consumer of {queue} has not polled Redis for {ago:.0f}s"
    return None


def _summary(status: dict[str, Any], now: float) -> dict[str, Any]:
    heartbeat = status["heartbeat_at_ms"]
    return {
        "pid": status["pid"],
        "state": status["state"],
        "threads": status["threads"],
        "in_flight": status["in_flight"],
        "consumers_alive": sum(1 for c in status["consumers"].values() if c["alive"]),
        "consumers": len(status["consumers"]),
        "last_heartbeat_age_s": round(now - heartbeat / 1000, 3) if heartbeat else None,
        "reported_age_s": round(now - float(status["at"]), 3),
    }
