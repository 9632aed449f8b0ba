"""`python -m bench [--quick] [--only 1,2,...] [--rounds N]`: run the scenarios, print the table,
write bench/results/latest.json and latest.md (quick mode: results.{json,md} beside the run's logs
in bench/results/logs/, which git ignores: a smoke run's numbers mean nothing).

Scenarios, in the order they run: 1 API submit, 2 worker path, 3 webhook delivery (+ latency and
the Redis memory per task of 5), 4 scale, 5 worker RSS, 6 retry cadence, 7 slow receiver, 8 dead
endpoint, 9 crash recovery, peers (Celery, RQ, arq),
scale-out (worker instances on one Redis: its CPU per webhook and the fleet ceiling), batch (tasks/s
through batch submits vs single submits).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from bench.common import BENCH, EXTRA_ENV, BenchError, ForeignLoad, code_fingerprint, log, machine_facts
from bench.context import FULL, QUICK, Context
from bench.report import text_table, write

# name -> (module, function)
SCENARIOS: dict[str, tuple[str, str]] = {
    "1": ("bench.s_api", "run"),
    "2": ("bench.s_worker", "run_worker_path"),
    "3": ("bench.s_webhook", "run"),
    "4": ("bench.s_worker", "run_scale"),
    "5": ("bench.s_worker", "run_rss"),
    "6": ("bench.s_retry", "run"),
    "7": ("bench.s_slow", "run"),
    "8": ("bench.s_dead", "run"),
    "9": ("bench.s_crash", "run"),
    "peers": ("bench.s_peers", "run"),
    "scale-out": ("bench.s_scale_out", "run"),
    "batch": ("bench.s_batch", "run"),
}


def _scenario(name: str) -> Callable[[Context], None]:
    module, func = SCENARIOS[name]
    return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 round: checks the harness runs")
    parser.add_argument("--only", default="", help=f"comma-separated scenarios among {', '.join(SCENARIOS)}")
    parser.add_argument("--rounds", type=int, default=0, help="override the number of rounds")
    parser.add_argument(
        "--env", action="append", default=[], metavar="K=V", help="extra environment for every child process"
    )
    parser.add_argument(
        "--output",
        default="",
        help="results name under bench/results (default latest; --quick: beside the logs)",
    )
    args = parser.parse_args(argv)

    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--env wants K=V, not {item!r}")
        EXTRA_ENV[key] = value
    mode = "quick" if args.quick else "full"
    sizes = QUICK if args.quick else FULL
    if args.rounds:
        sizes = replace(sizes, rounds=args.rounds)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    ctx = Context(mode=mode, sizes=sizes, logs=BENCH / "results" / "logs" / f"{stamp}-{mode}")
    ctx.logs.mkdir(parents=True, exist_ok=True)
    facts = machine_facts()
    facts["mode"] = mode
    facts["extra_env"] = dict(EXTRA_ENV)
    log(f"{mode} run of scenarios {', '.join(names)}; logs in {ctx.logs}")
    log(f"machine: {facts['nproc']} cores, load {facts['loadavg']}, git {facts['git']}")
    t0 = time.monotonic()
    failures: list[str] = []
    noise: dict[str, dict[str, float]] = {}
    for name in names:
        t1 = time.monotonic()
        code = code_fingerprint()
        log(f"scenario {name} ...")
        with ForeignLoad() as foreign:
            try:
                _scenario(name)(ctx)
            except (BenchError, OSError, RuntimeError) as exc:
                failures.append(name)
                ctx.notes.append(f"scenario {name} FAILED: {str(exc).splitlines()[0] if str(exc) else exc!r}")
                traceback.print_exc()
        took = time.monotonic() - t1
        if code_fingerprint() != code:
            ctx.notes.append(
                f"scenario {name}: the product's code changed on disk while it ran (mixed versions)"
            )
            log(f"WARNING: queue_system/ or cmd/ changed during scenario {name}")
        noise[name] = {
            "seconds": round(took),
            "cores": round(foreign.cores(), 2),
            "peak": round(foreign.peak_cores, 2),
        }
        log(f"scenario {name} took {took:.0f} s; other processes used {foreign.cores():.2f} cores on average")
    facts["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    facts["seconds"] = round(time.monotonic() - t0, 1)
    facts["foreign_cpu"] = noise
    facts["code_fingerprint_end"] = code_fingerprint()
    ctx.notes.append(
        "CPU used by other processes on the machine during each scenario (average cores, peak over 1 s): "
        + ", ".join(f"{k}: {v['cores']:.2f} (peak {v['peak']:.2f})" for k, v in noise.items())
    )
    ctx.rows.sort(key=lambda r: (not r.scenario[0].isdigit(), r.scenario[:1]))  # stable: keeps run order
    output = args.output or (f"logs/{ctx.logs.name}/results" if args.quick else "latest")
    path = write(ctx.rows, facts, ctx.config(), ctx.notes, output)
    print()
    print(
        f"queue_system benchmarks ({mode}) · {facts['date']} · {facts['nproc']} cores · "
        f"load {facts['loadavg']} -> {facts['loadavg_end']} · {facts['seconds']} s"
    )
    print(text_table(ctx.rows))
    for note in ctx.notes:
        print(f"  - {note}")
    print(f"\nwritten: {path} and {path.with_suffix('.md')}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
