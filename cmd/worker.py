"""The worker: `python cmd/worker.py` (make run-worker). Needs REDIS_URL.

Validates the settings, then becomes the dramatiq CLI (exec), so signals reach Dramatiq directly:
SIGTERM/Ctrl-C lets running tasks finish and leaves the rest queued.
"""

from __future__ import annotations

import os
import sys

import _common


def main() -> None:
    settings = _common.settings_or_exit()
    w = settings.worker
    env = dict(os.environ)
    # How long an idle consumer waits between polls at most (Dramatiq's default is 1 s): it
    # bounds the pick-up latency of a task submitted to an idle worker.
    env.setdefault("dramatiq_worker_timeout", "100")
    if w.prefetch:
        env["dramatiq_queue_prefetch"] = str(w.prefetch)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_common.ROOT), env.get("PYTHONPATH")) if p)
    args = [
        sys.executable,
        "-m",
        "dramatiq",
        "queue_system.worker.app",
        "--processes",
        str(w.processes),
        "--threads",
        str(w.threads),
        "--queues",
        "priority",
        "default",
        "--path",
        os.getcwd(),
        "--worker-shutdown-timeout",
        str(w.request_timeout_ms + 30_000),
    ]
    os.execve(sys.executable, args, env)  # noqa: S606 - become the dramatiq CLI, no shell


if __name__ == "__main__":
    main()
