"""The worker's metrics: attempts are tallied in memory and written by `flush` (worker/metrics.py).

Pure units, no Redis: the multiprocess files are covered end to end in
tests/e2e/test_worker_health_e2e.py."""

from __future__ import annotations

import bisect
from typing import Any

from prometheus_client import Histogram

from queue_system.domain.models import Outcome, TaskStatus
from queue_system.worker.metrics import DURATION_BUCKETS, WorkerMetrics, _Tally, add_observations

# On a bound, between bounds, below the first and above the last (+Inf).
DURATIONS = [0.0, 0.005, 0.0051, 0.025, 0.3, 1.0, 59.9, 120.0, 500.0, 0.004]


def samples(metric: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in metric.collect():
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(metric: Any, suffix: str, **labels: str) -> float:
    """One sample of `metric`: its name plus `suffix` (e.g. `_count`), with exactly `labels`."""
    name = metric._name + suffix
    return samples(metric).get((name, tuple(sorted(labels.items()))), 0.0)


def test_adding_tallied_observations_equals_observing_each() -> None:
    # Pins what add_observations relies on in prometheus_client: a labelled histogram's `_buckets`
    # (per bucket, +Inf last) and `_sum`. An upgrade that changes them fails here.
    observed = Histogram("h", "x", ["type"], buckets=DURATION_BUCKETS, registry=None)
    added = Histogram("h", "x", ["type"], buckets=DURATION_BUCKETS, registry=None)
    tally = _Tally()
    for d in DURATIONS:
        observed.labels("noop").observe(d)
        tally.buckets[bisect.bisect_left(DURATION_BUCKETS, d)] += 1
        tally.seconds += d
    add_observations(added.labels("noop"), tally.buckets, tally.seconds)
    assert samples(added) == samples(observed)
    assert value(added, "_count", type="noop") == value(added, "_bucket", le="+Inf", type="noop") == 10
    assert value(added, "_bucket", le="0.005", type="noop") == 3  # 0.0, 0.004 and 0.005


def test_attempts_are_written_when_flushed_and_only_once() -> None:
    metrics = WorkerMetrics()
    for d in DURATIONS:
        metrics.attempt_finished("noop", Outcome.SUCCESS, TaskStatus.COMPLETED, d, None)
    metrics.attempt_finished("webhook", Outcome.TRANSIENT, TaskStatus.RETRYING, 0.2, 503)
    assert value(metrics.attempts, "_total", type="noop", outcome="success") == 0  # tallied, not written
    metrics.flush()
    metrics.flush()  # nothing new: writes nothing
    assert value(metrics.attempts, "_total", type="noop", outcome="success") == len(DURATIONS)
    assert value(metrics.finished, "_total", type="noop", outcome="completed") == len(DURATIONS)
    assert value(metrics.duration, "_count", type="noop") == len(DURATIONS)
    assert value(metrics.duration, "_sum", type="noop") == sum(DURATIONS)
    assert value(metrics.retries, "_total", type="webhook") == 1
    assert value(metrics.deliveries, "_total", status_class="5xx") == 1


def test_schedule_firings_are_counted_by_timing_with_their_lateness() -> None:
    metrics = WorkerMetrics()
    metrics.schedule_fired("every", 1, 0.12)
    metrics.schedule_fired("every", 0, 0.3)  # won the move, its tick's task existed: no task
    metrics.schedule_fired("cron", 5, 7200.0)  # a catch_up: all after two hours down
    assert value(metrics.schedule_firings, "_total", timing="every") == 2
    assert value(metrics.schedule_tasks, "_total", timing="every") == 1
    assert value(metrics.schedule_tasks, "_total", timing="cron") == 5
    assert value(metrics.schedule_lateness, "_bucket", le="0.25", timing="every") == 1
    assert value(metrics.schedule_lateness, "_bucket", le="3600.0", timing="cron") == 0
    assert value(metrics.schedule_lateness, "_count", timing="cron") == 1
