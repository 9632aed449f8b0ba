"""Scenario 9: crash recovery. SIGKILL the worker group while its prefetch is full, start a new one at
once: the seconds from the SIGKILL until every task is done (target <= 2 x WORKER_LEASE).

Webhooks to a receiver answering in 1 s (bench/slow_receiver.py), submitted through the API while
the worker (default settings) runs, topped up so that messages keep waiting in the queue: once the
queue has not been empty for 2 s (every process took all its prefetch allows, and leaves the rest),
or `crash_max` tasks were fed, the prefetch counts as full. Ours: SIGKILL the process group (the
dramatiq CLI and the processes it forked), start `cmd/worker.py` again at once. Baseline: the
same, without the kill: the seconds from the same point until every task is done, so the ratio is
the price of the crash.

A round that is not done within `crash_wait` s counts as that many seconds (a lower bound), and
says so in the notes.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import redis

from bench.common import BenchError, Proc, log
from bench.context import WEBHOOK_BODY, Context
from bench.report import Row, Target
from bench.systems import KEYS, failed
from bench.world import (
    completed,
    delayed_receiver_and_api,
    queued,
    setting_value,
    start_default_worker,
    submit_all,
    webhook_request,
)

DELAY_MS = 1000
FULL_FOR_S = 2.0  # the queue non-empty this long: every process's prefetch is full
FEED_S = 60.0  # the bound on filling the prefetch


def _fill(client: redis.Redis, proc: Proc, submit: Callable[[int], int], ctx: Context) -> tuple[int, bool]:
    """Top the queue up until the prefetch is full -> (tasks accepted, full seen)."""
    backlog = 20 if ctx.quick else 50
    accepted = submit(backlog)
    nonempty_since: float | None = None
    deadline = time.monotonic() + FEED_S
    while time.monotonic() < deadline:
        proc.check_alive()
        waiting = queued(client)
        now = time.monotonic()
        if waiting == 0:
            nonempty_since = None
        elif nonempty_since is None:
            nonempty_since = now
        if nonempty_since is not None and now - nonempty_since >= FULL_FOR_S and completed(client) > 0:
            return accepted, True
        if waiting < backlog:
            step = min(2 * backlog - waiting, ctx.sizes.crash_max - accepted)
            if step <= 0:
                return accepted, False
            accepted += submit(step)
        time.sleep(0.1)
    return accepted, False


def _round(
    side: str, url: str, client: redis.Redis, api: str, rx: str, ctx: Context
) -> tuple[float, int, bool]:
    """-> (seconds from the kill point until all done, tasks held by the group then, done in time)."""
    client.flushall()
    serial = 0

    def submit(n: int) -> int:
        nonlocal serial
        bodies = [webhook_request(f"{rx}/crash/{serial + i}", WEBHOOK_BODY) for i in range(n)]
        serial += n
        refused = submit_all(api, bodies)
        if refused:
            raise BenchError(f"9: {refused} submissions refused")
        return n

    first = start_default_worker(url, ctx.logs, name="worker-crash")
    second: Proc | None = None
    try:
        accepted, full = _fill(client, first, submit, ctx)
        total = int(client.zcard(KEYS.index()))
        held = total - completed(client) - queued(client)
        t0 = time.monotonic()
        if side == "ours":
            first.kill_group(signal.SIGKILL)
            second = start_default_worker(url, ctx.logs, name="worker-crash-restarted")
        watched = second or first
        deadline = t0 + ctx.sizes.crash_wait
        while completed(client) < total and time.monotonic() < deadline:
            watched.check_alive()
            if failed(client):
                raise BenchError(f"9: {failed(client)} task(s) failed")
            time.sleep(0.05)
        took = time.monotonic() - t0
        done = completed(client) >= total
        log(
            f"s9 {side}: {accepted} tasks, {held} held by the worker group at the "
            f"{'kill' if side == 'ours' else 'same point'} (prefetch {'full' if full else 'not seen full'}); "
            + (
                f"all done {took:.1f} s later"
                if done
                else f"{total - completed(client)} not done after {took:.0f} s"
            )
        )
        return took, held, done
    finally:
        first.stop(5)
        if second is not None:
            second.stop(5)


def run(ctx: Context) -> None:
    lease_s = int(setting_value("WORKER_LEASE", "15s")) / 1000
    seconds: dict[str, list[float]] = {"baseline": [], "ours": []}
    held: list[float] = []
    unfinished = 0
    with delayed_receiver_and_api("crash", "rx-1s", DELAY_MS, ctx.logs) as (url, client, rx, api):
        for rnd, side in ctx.sides():
            log(f"s9 round {rnd + 1} {side} ...")
            took, n_held, done = _round(side, url, client, api, rx, ctx)
            seconds[side].append(took)
            if side == "ours":
                held.append(float(n_held))
                unfinished += not done
    ctx.rows += [
        Row(
            "9 crash",
            f"SIGKILL with a full prefetch ({DELAY_MS / 1000:g} s receiver): s until every task is done",
            "s",
            ours=seconds["ours"],
            ours_label="killed + restarted",
            baseline=seconds["baseline"],
            baseline_label="not killed",
            higher_is_better=False,
            target=Target("ours", "<=", 2 * lease_s),
        ),
        Row(
            "9 crash",
            "tasks held by the killed group",
            "tasks",
            ours=held,
            ours_label="ours",
        ),
    ]
    ctx.notes.append(
        f"9: target 2 x WORKER_LEASE = {2 * lease_s:g} s; the prefetch counts as full once the queue "
        f"has not been empty for {FULL_FOR_S:g} s"
        + (
            f"; {unfinished} round(s) not done within {ctx.sizes.crash_wait:g} s count as that "
            "(a lower bound)"
            if unfinished
            else ""
        )
        + "."
    )
