"""`queue-system worker`: validate the settings, then become the dramatiq CLI (exec).

Exec rather than a child process, so that signals reach Dramatiq directly: SIGTERM/Ctrl-C lets the
running tasks finish and leaves the rest queued.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from queue_system.settings import Settings
from queue_system.storage.dramatiq_wire import QUEUES

APP = "queue_system.worker.app"  # the module every worker process imports (broker, then actors)


def dramatiq_command(settings: Settings, environ: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """-> (argv, environment) of the dramatiq CLI for these settings."""
    w = settings.worker
    env = dict(environ)
    # How long an idle consumer waits between polls at most (Dramatiq's default is 1 s): it
    # bounds the pick-up latency of a task submitted to an idle worker.
    env.setdefault("dramatiq_worker_timeout", "100")
    if w.prefetch:
        env["dramatiq_queue_prefetch"] = str(w.prefetch)
    argv = [sys.executable, "-m", "dramatiq", APP]
    argv += ["--processes", str(w.processes), "--threads", str(w.threads), "--queues", *QUEUES]
    # Running tasks may take the request timeout to finish; 30 s more for recording their outcome.
    argv += ["--worker-shutdown-timeout", str(w.request_timeout_ms + 30_000)]
    return argv, env


def exec_worker(settings: Settings) -> None:
    argv, env = dramatiq_command(settings, os.environ)
    os.execve(sys.executable, argv, env)  # noqa: S606 - become the dramatiq CLI, no shell
