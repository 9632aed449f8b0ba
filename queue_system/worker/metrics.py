"""The worker's Prometheus metrics, summed across its processes.

Each worker process writes its samples to files in the instance's metrics directory
(prometheus_client's multiprocess mode: `PROMETHEUS_MULTIPROC_DIR`, set by worker/launch.py before
anything imports prometheus_client); the master reads them all on each scrape of
WORKER_METRICS_PORT. Labels are bounded: task types are the registered kinds, outcomes and status
classes are fixed sets; never a task id, a schedule id or a URL (schedules are counted by their
timing, `cron` or `every`: a schedule id is a client's value, as unbounded as task ids).

An attempt's numbers are tallied in memory (a dict under a lock) and written to the metric files
by `flush`, which the process's health reporter calls every second and once more as the process
stops (worker/health.py): writing them per attempt (an mmap write under prometheus_client's
process-wide lock, four per attempt) cost a twentieth of a no-op task's CPU. A scrape is at most
a second behind.

Counts that live in Redis (tasks by status, queue depths, oldest pending age) are the API's
/metrics, read from Redis at scrape time (api/metrics.py): one Redis, one answer, however many
worker instances are scraped.
"""

from __future__ import annotations

import bisect
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from queue_system.domain.models import Outcome, TaskStatus

# Attempt durations: 5 ms (a no-op) to 2 min (a slow receiver up to its timeout).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Lateness of a firing behind its tick: the reconciler's poll (~0.1 s) when all is well, up to hours
# after a downtime (a catch-up fires its newest missed tick).
LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
FINAL = {TaskStatus.COMPLETED: "completed", TaskStatus.FAILED: "failed"}


Key = tuple[str, Outcome, TaskStatus, str | None]  # task type, outcome, status after, delivery class


class _Tally:
    """The attempts of one key since the last flush: how many, their seconds, per duration bucket."""

    __slots__ = ("buckets", "count", "seconds")

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)  # the last one: above every bound (+Inf)


def add_observations(histogram: Histogram, buckets: list[int], seconds: float) -> None:
    """`histogram.observe(...)` of many values at once: their count per bucket, and their sum.

    prometheus_client has no public call for it; this writes the labelled child's `_buckets` (one
    value per upper bound, +Inf last, counted per bucket and made cumulative when collected) and
    `_sum`, as `observe` does. tests/test_worker_metrics.py pins that."""
    for i, n in enumerate(buckets):
        if n:
            histogram._buckets[i].inc(n)
    histogram._sum.inc(seconds)


def status_class(status_code: int | None) -> str:
    """An HTTP status as its class (`2xx` ... `5xx`), `error` when there was no response."""
    if status_code is None:
        return "error"
    return f"{status_code // 100}xx" if 100 <= status_code < 600 else "error"


class WorkerMetrics:
    """The metrics of one worker process; implements service.observe.Observer.

    Unregistered on purpose (`registry=None`): in multiprocess mode the samples go to files and the
    master's collector reads them; a second instance in one process (tests) is harmless."""

    def __init__(self) -> None:
        self.attempts = Counter(
            "queue_system_worker_attempts_total",
            "Attempts run, by task type and outcome (success, transient, permanent)",
            ["type", "outcome"],
            registry=None,
        )
        self.finished = Counter(
            "queue_system_worker_tasks_finished_total",
            "Tasks that reached a final status, by type and outcome (completed, failed)",
            ["type", "outcome"],
            registry=None,
        )
        self.retries = Counter(
            "queue_system_worker_retries_scheduled_total",
            "Attempts after which a retry was scheduled, by task type",
            ["type"],
            registry=None,
        )
        self.duration = Histogram(
            "queue_system_worker_attempt_duration_seconds",
            "How long one attempt ran, by task type",
            ["type"],
            buckets=DURATION_BUCKETS,
            registry=None,
        )
        self.deliveries = Counter(
            "queue_system_worker_deliveries_total",
            "Outbound HTTP deliveries by response class (2xx..5xx; error: no response)",
            ["status_class"],
            registry=None,
        )
        self.recovered_total = Counter(
            "queue_system_worker_recovered_total",
            "Attempts whose worker was lost (lease expired), recovered by the reconciler",
            registry=None,
        )
        self.schedule_firings = Counter(
            "queue_system_worker_schedule_firings_total",
            "Schedule firings this process won (one per schedule and tick fired), by timing (cron, every)",
            ["timing"],
            registry=None,
        )
        self.schedule_tasks = Counter(
            "queue_system_worker_schedule_tasks_created_total",
            "Tasks created by schedule firings (a catch_up: all firing creates several), by timing",
            ["timing"],
            registry=None,
        )
        self.schedule_skipped_ticks = Counter(
            "queue_system_worker_schedule_ticks_skipped_total",
            "Ticks of `overlap: skip` schedules not fired: their previous task was unfinished, by timing",
            ["timing"],
            registry=None,
        )
        self.schedule_lateness = Histogram(
            "queue_system_worker_schedule_lateness_seconds",
            "How far a firing's newest tick was behind when it fired, by timing",
            ["timing"],
            buckets=LATENESS_BUCKETS,
            registry=None,
        )
        self.bulk_total = Counter(
            "queue_system_worker_bulk_tasks_total",
            "Tasks bulk operations acted on (done, skipped or failed), by action (retry, cancel, delete)",
            ["action"],
            registry=None,
        )
        # The labelled children of each key seen (made once: labels() costs more than an inc), and
        # the attempts tallied since the last flush.
        self._children: dict[Key, tuple[tuple[Counter, ...], Histogram]] = {}
        self._lock = threading.Lock()
        self._tally: dict[Key, _Tally] = {}
        # Summed over the live processes: a stopped process's value leaves with it.
        self.in_flight = Gauge(
            "queue_system_worker_in_flight",
            "Tasks being run right now",
            registry=None,
            multiprocess_mode="livesum",
        )

    def attempt_finished(
        self,
        task_type: str,
        outcome: Outcome,
        status: TaskStatus,
        duration_s: float,
        status_code: int | None,
    ) -> None:
        delivery = status_class(status_code) if status_code is not None or task_type == "webhook" else None
        key = (task_type, outcome, status, delivery)
        bucket = bisect.bisect_left(DURATION_BUCKETS, duration_s)  # the first bound >= it, as observe
        with self._lock:
            tally = self._tally.get(key)
            if tally is None:
                tally = self._tally[key] = _Tally()
            tally.count += 1
            tally.seconds += duration_s
            tally.buckets[bucket] += 1

    def flush(self) -> None:
        """Write the attempts tallied since the last flush to the metric files."""
        with self._lock:
            tally, self._tally = self._tally, {}
        for key, t in tally.items():
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = self._label(*key)
            counters, duration = children
            for counter in counters:
                counter.inc(t.count)
            add_observations(duration, t.buckets, t.seconds)

    def _label(
        self, task_type: str, outcome: Outcome, status: TaskStatus, delivery: str | None
    ) -> tuple[tuple[Counter, ...], Histogram]:
        """The labelled series one attempt of this kind moves (the key's values are bounded sets)."""
        counters = [self.attempts.labels(task_type, outcome.value)]
        if status in FINAL:
            counters.append(self.finished.labels(task_type, FINAL[status]))
        elif status is TaskStatus.RETRYING:
            counters.append(self.retries.labels(task_type))
        if delivery is not None:
            counters.append(self.deliveries.labels(delivery))
        return tuple(counters), self.duration.labels(task_type)

    def recovered(self, count: int) -> None:
        if count:
            self.recovered_total.inc(count)

    def schedule_fired(self, timing: str, created: int, late_s: float) -> None:
        # Written at once, not tallied: a firing is at most one per schedule and second.
        self.schedule_firings.labels(timing).inc()
        if created:
            self.schedule_tasks.labels(timing).inc(created)
        self.schedule_lateness.labels(timing).observe(max(0.0, late_s))

    def schedule_skipped(self, timing: str, ticks: int) -> None:
        if ticks:
            self.schedule_skipped_ticks.labels(timing).inc(ticks)

    def bulk_acted(self, action: str, count: int) -> None:
        if count:
            self.bulk_total.labels(action).inc(count)


def process_stopped(pid: int) -> None:
    """Drop a stopped process's live gauges (its counters stay: totals must not go down)."""
    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def render(directory: str) -> bytes:
    """The text exposition of every process's samples in `directory`, summed."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
