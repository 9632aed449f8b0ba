"""`queue-system worker`: validate the settings, then run the dramatiq CLI's master in this process.

In this process rather than a child, so that signals reach Dramatiq directly: SIGTERM/Ctrl-C lets
the running tasks finish and leaves the rest queued. Beside it the master serves GET /health
(WORKER_HEALTH_PORT) and GET /metrics (WORKER_METRICS_PORT) and stops a stalled instance with a
non-zero exit (worker/master.py). The instance's directory (status files, metrics files) is
emptied at start and removed at exit.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from loguru import logger

from queue_system.config.settings import Settings
from queue_system.domain.keyring import KeyRing
from queue_system.domain.queues import QUEUES
from queue_system.logging import configure_logging
from queue_system.storage.auth_failures import FailureLimit, FailureThrottle
from queue_system.storage.connection import sync_client
from queue_system.worker.instance import DIR_VARIABLE, metrics_dir, status_dir

APP = "queue_system.worker.app"  # the module every worker process imports (broker, then actors)
HANDLED_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}  # what Dramatiq's master handles


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


def instance_dir(settings: Settings) -> Path:
    """This instance's own directory: one per master process, so instances never share files."""
    return (settings.data_dir / "worker" / str(os.getpid())).resolve()


def metrics_keys(settings: Settings) -> KeyRing | None:
    """The keys GET /metrics asks for: the API's (any role), unless METRICS_PUBLIC=true or no keys
    are configured. ValueError naming the variable for a bad entry, and for ENV=production without
    keys: like the API, production does not open a door just because a setting is missing."""
    api = settings.api
    if api.metrics_public or api.auth == "disabled":
        return None
    try:
        ring = KeyRing.from_settings(api.keys, api.read_keys, api.keys_file)
    except OSError as exc:
        raise ValueError(f"API_KEYS_FILE: cannot be read ({exc.strerror})") from None
    if not ring.enabled and settings.production and settings.worker.metrics_port:
        raise ValueError(
            "API_KEYS: ENV=production would serve the worker's GET /metrics without a key: give the "
            "worker API_KEYS or API_KEYS_FILE, or set METRICS_PUBLIC=true or WORKER_METRICS_PORT=0"
        )
    return ring if ring.enabled else None


def metrics_throttle(settings: Settings, keys: KeyRing | None) -> FailureThrottle | None:
    """The API's lockout (API_AUTH_FAILURES, API_AUTH_LOCKOUT) for wrong keys on GET /metrics."""
    if keys is None or not settings.redis_url:
        return None
    api = settings.api
    limit = FailureLimit(api.auth_failures.count, api.auth_failures.period_ms, api.auth_lockout_ms)
    client = sync_client(settings.redis, socket_connect_timeout=2, socket_timeout=2)
    return FailureThrottle(client, limit)


def run_worker(settings: Settings) -> int:
    """Run the dramatiq CLI's master here, with health, metrics and the stall monitor. -> exit code."""
    argv, env = dramatiq_command(settings, os.environ)
    instance = instance_dir(settings)
    shutil.rmtree(instance, ignore_errors=True)  # a previous instance with this pid left it
    for directory in (status_dir(instance), metrics_dir(instance)):
        directory.mkdir(parents=True)
    env |= {DIR_VARIABLE: str(instance), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir(instance))}
    # Before dramatiq and prometheus_client are imported: both read these at import, and the
    # worker processes forked below inherit what this process imported.
    os.environ.update(env)
    configure_logging(production=settings.production, level=settings.log_level, process="worker-master")

    from dramatiq import cli

    from queue_system.worker.master import Master

    w = settings.worker
    try:
        keys = metrics_keys(settings)
    except ValueError as exc:  # the API refuses the same entries; say which variable, not the key
        logger.error("configuration error: {}", exc)
        shutil.rmtree(instance, ignore_errors=True)
        return 2
    master = Master(
        instance, w.processes, w.health_port, w.metrics_port, keys, metrics_throttle(settings, keys)
    )
    # Dramatiq's master blocks these signals while it forks, and takes them once its handlers are
    # in place; but the mask is per thread: the threads started here must block them for good, or
    # an early SIGTERM would reach one of them and kill the process with the default action.
    signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    try:
        master.start()
    except OSError as exc:
        logger.error("cannot serve health/metrics (WORKER_HEALTH_PORT, WORKER_METRICS_PORT): {}", exc)
        shutil.rmtree(instance, ignore_errors=True)
        return 2
    try:
        args = cli.make_argument_parser().parse_args(argv[3:])  # type: ignore[no-untyped-call]
        code = int(cli.main(args) or 0)  # type: ignore[no-untyped-call]
    finally:
        master.stop()
        shutil.rmtree(instance, ignore_errors=True)
    return master.exit_code(code)
