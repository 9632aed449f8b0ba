"""Scenario "scale-out": how far one Redis goes.

Several worker instances (`cmd/worker.py`, one process each, as separate hosts would run them)
share one Redis and drain N webhooks to the 0 ms sink (nginx), against a bare Dramatiq actor
with the same number of processes. Every worker host shares the one Redis, so its CPU per
webhook sets the fleet's ceiling: one Redis core (Redis runs commands on one thread) feeds at most
1,000 / (Redis ms per webhook) webhooks/s, however many workers are added. Both halves of a
webhook's Redis cost are counted: the submit (ours: the create script, pipelined as the API's
Batcher sends it; the bare actor: Dramatiq's HSET + RPUSH, pipelined) and the drain (fetch,
claim, finish with its ack).

A last, profiled round (not in the medians) resets Redis's statistics before each half and
reads where the time went: INFO commandstats (the commands the scripts call, counted one by one)
and SLOWLOG at a 0 us threshold (every EVALSHA with its script's sha, so the time per script).
"""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dramatiq.brokers.redis
import redis

from bench.common import BenchError, Proc, embedded_redis, free_port, log, redis_cpu_s, running, tree_cpu_s
from bench.context import WEBHOOK_BODY, WEBHOOK_BODY_JSON, Context
from bench.drain import Drain, drain
from bench.report import Row, Target
from bench.s_worker import drain_timeout
from bench.sink import start_sink
from bench.systems import (
    WorkerShape,
    bare_enqueue,
    bare_message,
    bare_outstanding,
    completed,
    failed,
    preload_ours,
    start_bare_worker,
    start_worker,
    webhook_submissions,
)
from queue_system.storage import scripts

# Worker instances on the one Redis (each a host of its own in production): 1 process x 8 threads.
INSTANCES = 4
INSTANCE = WorkerShape(processes=1, threads=8, prefetch=16)
TARGET_MS = 0.10  # Redis CPU per webhook, submit + drain (issue 19: a core feeds >= 10,000/s)


def _sha(source: str) -> str:
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()  # what Redis names it by


SCRIPT_NAMES = {_sha(v): k for k, v in vars(scripts).items() if k.isupper() and isinstance(v, str)}
# Dramatiq's one script (fetch, ack, nack, enqueue...): the command is its first argument.
DRAMATIQ = _sha((Path(dramatiq.brokers.redis.__file__).parent / "redis" / "dispatch.lua").read_text())


class Fleet:
    """The worker instances, as `drain` watches one process."""

    def __init__(self, procs: list[Proc]) -> None:
        self.procs = procs
        self.name = f"{len(procs)} worker instances"

    def check_alive(self) -> None:
        for proc in self.procs:
            proc.check_alive()

    def cpu_s(self) -> float:
        return sum(tree_cpu_s(p.pid) for p in self.procs)


@dataclass(frozen=True)
class Round:
    drain: Drain
    submit_redis_ms: float  # Redis CPU per webhook while the tasks were submitted

    @property
    def redis_ms(self) -> float:
        return self.submit_redis_ms + self.drain.cpu_ms["redis"]


def _submit(client: redis.Redis, load: Callable[[], None], n: int) -> float:
    """Run `load` -> Redis CPU ms per task it cost."""
    before = redis_cpu_s(client)
    load()
    return (redis_cpu_s(client) - before) * 1000 / n


def _round(side: str, url: str, client: redis.Redis, sink: str, ctx: Context, profile: bool = False) -> Round:
    n = ctx.sizes.webhook_n
    urls = [f"{sink}/hooks/{i}" for i in range(n)]
    client.flushall()
    if profile:
        _reset(client)
    if side == "baseline":
        messages = [bare_message("post", u, WEBHOOK_BODY_JSON) for u in urls]
        submit = _submit(client, lambda: bare_enqueue(client, messages), n)
    else:
        submit = _submit(client, lambda: preload_ours(url, webhook_submissions(urls, WEBHOOK_BODY)), n)
    if profile:
        _profile(client, n, "submit")
        _reset(client)
    if side == "baseline":
        shape = WorkerShape(INSTANCES, INSTANCE.threads, INSTANCE.prefetch)
        procs = [start_bare_worker(url, shape, ctx.logs, name="scale-out-bare")]
        done, bad = (lambda: n - bare_outstanding(client)), None
    else:
        procs = [start_worker(url, INSTANCE, ctx.logs, name=f"scale-out-{i}") for i in range(INSTANCES)]
        done, bad = (lambda: completed(client)), (lambda: failed(client))
    fleet = Fleet(procs)
    try:
        d = drain(
            fleet,  # type: ignore[arg-type]  # drain needs check_alive and name only
            done,
            n,
            timeout=drain_timeout(n),
            failed=bad,
            cpu=lambda: {"worker": fleet.cpu_s(), "redis": redis_cpu_s(client)},
        )
    finally:
        for proc in procs:
            proc.stop(20)
    if profile:
        _profile(client, n, "drain")
    return Round(d, submit)


def _reset(client: redis.Redis) -> None:
    client.config_resetstat()
    client.slowlog_reset()
    client.config_set("slowlog-max-len", 200_000)
    client.config_set("slowlog-log-slower-than", 0)


def _profile(client: redis.Redis, n: int, phase: str) -> None:
    """Log where Redis spent its time in `phase`, per webhook: commands, then scripts."""
    stats = client.info("commandstats")
    rows = sorted(
        ((name.removeprefix("cmdstat_"), int(s["calls"]), int(s["usec"])) for name, s in stats.items()),
        key=lambda r: -r[2],
    )
    text = ", ".join(f"{c} {calls / n:.2f} calls {us / n:.1f} us" for c, calls, us in rows[:14] if calls)
    log(f"scale-out {phase} per webhook, INFO commandstats: {text}")
    entries = client.slowlog_get(200_000)
    client.config_set("slowlog-log-slower-than", 10_000)
    per_script: dict[str, list[int]] = defaultdict(list)
    calls: Counter[str] = Counter()
    for entry in entries:
        args = [a.decode() if isinstance(a, bytes) else str(a) for a in entry["command"].split()[:5]]
        if len(args) > 1 and args[0].upper() == "EVALSHA":
            name = SCRIPT_NAMES.get(args[1], args[1][:8])
            if args[1] == DRAMATIQ and len(args) == 5:
                name = f"dramatiq {args[4]}"
            per_script[name].append(int(entry["duration"]))
            calls[name] += 1
    text = ", ".join(
        f"{name} {calls[name] / n:.2f} calls x {statistics.mean(us):.1f} us = {sum(us) / n:.1f} us"
        for name, us in sorted(per_script.items(), key=lambda kv: -sum(kv[1]))
    )
    log(f"scale-out {phase} per webhook, SLOWLOG by script ({len(entries)} entries): {text}")


def run(ctx: Context) -> None:
    rounds: dict[str, list[Round]] = {"baseline": [], "ours": []}
    with embedded_redis("scaleout") as (url, client):
        port = free_port()
        sink_proc, sink_kind = start_sink(port, ctx.logs)
        with running(sink_proc):
            sink = f"http://127.0.0.1:{port}"
            for rnd, side in ctx.sides():
                r = _round(side, url, client, sink, ctx)
                rounds[side].append(r)
                log(
                    f"scale-out round {rnd + 1} {side}: {r.drain.rate:.0f} deliveries/s; Redis CPU per "
                    f"webhook {r.submit_redis_ms:.3f} submit + {r.drain.cpu_ms['redis']:.3f} drain ms"
                )
            log("scale-out: a profiled round of ours (not counted)")
            _round("ours", url, client, sink, ctx, profile=True)
    if not rounds["ours"]:
        raise BenchError("scale-out: no round of ours")
    _rows(ctx, rounds, sink_kind)


def _rows(ctx: Context, rounds: dict[str, list[Round]], sink_kind: str) -> None:
    def values(side: str, get: Callable[[Round], float]) -> list[float]:
        return [get(r) for r in rounds[side]]

    base = {"baseline_label": "bare actor", "ours_label": "ours"}
    scenario = "scale-out"
    fleet = f"{INSTANCES} instances x {INSTANCE.label()}"
    ctx.rows += [
        Row(
            scenario,
            f"drain {ctx.sizes.webhook_n:,} to {sink_kind}, {fleet}",
            "deliveries/s",
            ours=values("ours", lambda r: r.drain.rate),
            baseline=values("baseline", lambda r: r.drain.rate),
            **base,
        ),
        Row(
            scenario,
            "Redis CPU per webhook, submit",
            "ms",
            ours=values("ours", lambda r: r.submit_redis_ms),
            baseline=values("baseline", lambda r: r.submit_redis_ms),
            higher_is_better=False,
            **base,
        ),
        Row(
            scenario,
            "Redis CPU per webhook, drain",
            "ms",
            ours=values("ours", lambda r: r.drain.cpu_ms["redis"]),
            baseline=values("baseline", lambda r: r.drain.cpu_ms["redis"]),
            higher_is_better=False,
            **base,
        ),
        Row(
            scenario,
            "Redis CPU per webhook, submit + drain",
            "ms",
            ours=values("ours", lambda r: r.redis_ms),
            baseline=values("baseline", lambda r: r.redis_ms),
            higher_is_better=False,
            target=Target("ours", "<=", TARGET_MS),
            **base,
        ),
        Row(
            scenario,
            "fleet ceiling per Redis core (1,000 / Redis ms per webhook)",
            "webhooks/s",
            ours=values("ours", lambda r: 1000 / r.redis_ms),
            baseline=values("baseline", lambda r: 1000 / r.redis_ms),
            target=Target("ours", ">=", 1000 / TARGET_MS),
            **base,
        ),
    ]
    ctx.notes.append(
        f"scale-out: {INSTANCES} separate cmd/worker.py instances (1 process each) on one Redis, vs one "
        f"bare Dramatiq worker with {INSTANCES} processes; submit cost: ours through TaskService.submit "
        "(the create script, 100 in flight), the bare actor's HSET + RPUSH pipelined; where the time goes "
        "(INFO commandstats, SLOWLOG per script) is in the run's log."
    )
