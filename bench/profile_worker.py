"""Profile the worker path with py-spy: `python -m bench.profile_worker [--tasks N] [--bare]`.

Loads N `noop` tasks (or bare Dramatiq no-op messages with --bare), starts the worker (1 process,
8 threads), and once it is draining records it with `py-spy record --subprocesses --gil --format raw`
until it is done. Prints the functions with the most samples (self and total) and the share of
samples by library. Needs py-spy (bench/requirements.txt) and ptrace rights (root, or
CAP_SYS_PTRACE).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import BENCH, embedded_redis, free_port, log, running, wait_until
from bench.context import WEBHOOK_BODY, WEBHOOK_BODY_JSON
from bench.sink import start_sink
from bench.systems import (
    WorkerShape,
    bare_enqueue,
    bare_message,
    bare_outstanding,
    completed,
    noop_submissions,
    preload_ours,
    start_bare_worker,
    start_worker,
    webhook_submissions,
)

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")
LIBRARIES = ("queue_system", "bench", "dramatiq", "redis", "loguru", "httpx", "httpcore", "msgspec")


def _area(frame: str) -> str:
    """py-spy shortens paths to `package/module.py`: the first part names the library."""
    match = _FRAME.match(frame)
    if not match:
        return "other"
    first = match.group("file").split("/", 1)[0]
    if first in LIBRARIES:
        return first
    return "stdlib/other" if "/" not in match.group("file") else first


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match.group("file")
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match.group('func')} ({path})"


def analyse(raw: Path, top: int) -> str:
    self_counts: collections.Counter[str] = collections.Counter()
    total_counts: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += count
        self_counts[_short(frames[-1])] += count
        areas[_area(frames[-1])] += count
        for frame in {_short(f) for f in frames}:
            total_counts[frame] += count
    out = [f"{samples} samples (threads holding the GIL)", "", "self time by library:"]
    out += [f"  {100 * c / samples:5.1f}%  {name}" for name, c in areas.most_common()]
    out += ["", f"top {top} by self time:"]
    out += [f"  {100 * c / samples:5.1f}%  {name}" for name, c in self_counts.most_common(top)]
    out += ["", f"top {top} by total time (the function or anything it calls):"]
    out += [f"  {100 * c / samples:5.1f}%  {name}" for name, c in total_counts.most_common(top)]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_worker")
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--bare", action="store_true", help="profile the bare Dramatiq actor instead")
    parser.add_argument("--webhook", action="store_true", help="webhooks to nginx (or the Python sink)")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        sys.stderr.write("py-spy is not installed: make bench-quick installs bench/requirements.txt\n")
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    logs = BENCH / "results" / "logs" / f"{stamp}-profile"
    logs.mkdir(parents=True, exist_ok=True)
    raw = logs / f"{'bare' if args.bare else 'ours'}-{'webhook' if args.webhook else 'noop'}.raw"
    shape = WorkerShape(processes=1, threads=args.threads)
    n = args.tasks
    with contextlib.ExitStack() as stack:
        url, client = stack.enter_context(embedded_redis("profile"))
        port = free_port()
        if args.webhook:
            stack.enter_context(running(start_sink(port, logs)[0]))
        urls = [f"http://127.0.0.1:{port}/hooks/{i}" for i in range(n)]
        if args.bare:
            messages = [bare_message("post", u, WEBHOOK_BODY_JSON) for u in urls] if args.webhook else None
            bare_enqueue(client, messages or [bare_message("noop") for _ in range(n)])
            worker = start_bare_worker(url, shape, logs)
            done = lambda: n - bare_outstanding(client)  # noqa: E731
        else:
            preload_ours(
                url, webhook_submissions(urls, WEBHOOK_BODY) if args.webhook else noop_submissions(n)
            )
            worker = start_worker(url, shape, logs)
            done = lambda: completed(client)  # noqa: E731
        with running(worker):
            wait_until("the worker to start draining", lambda: done() >= n * 0.02, 60)
            spy = subprocess.Popen(
                [
                    *(pyspy, "record", "--pid", str(worker.pid), "--subprocesses", "--gil", "--rate", "250"),
                    *("--format", "raw", "--output", str(raw), "--nonblocking"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            t0 = time.monotonic()
            wait_until("the drain", lambda: done() >= n * 0.98, 60 + n / 100)
            elapsed = time.monotonic() - t0
            spy.send_signal(signal.SIGINT)
            try:
                _, err = spy.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
                _, err = spy.communicate()
    if not raw.exists():
        sys.stderr.write(f"py-spy wrote nothing: {err.decode(errors='replace')[-2000:]}\n")
        return 1
    log(f"recorded {elapsed:.1f} s of the drain ({n * 0.96 / elapsed:.0f} tasks/s under the profiler)")
    report = analyse(raw, args.top)
    (raw.with_suffix(".txt")).write_text(report + "\n")
    print(report)
    print(f"\nraw stacks: {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
