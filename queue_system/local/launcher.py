"""`queue-system run` (make run): Redis (embedded when REDIS_URL is unset), the API and a worker;
in development also the mailbox (an SMTP sink) and the inbox (the API's own webhook receiver,
DEV_INBOX). It prints one line per component with its address, the API's once it listens, then
leaves that address in `{DATA_DIR}/run.json` for the CLI (run_state.py).

Ctrl-C (or SIGTERM) stops the worker and the API gracefully, then Redis (saving its data).
An embedded Redis that dies is restarted (embedded.RedisKeeper); when it keeps dying, everything
stops and the command exits 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from types import FrameType
from urllib.parse import urlsplit

from loguru import logger

from queue_system.config.settings import Settings
from queue_system.local import run_state
from queue_system.local.embedded import EmbeddedRedis, RedisKeeper
from queue_system.local.mailbox import DEV_RECIPIENT, DevMailbox
from queue_system.logging import configure_logging
from queue_system.storage.layout import LayoutError, ensure_layout_at


def start_children(env: dict[str, str]) -> dict[str, subprocess.Popen[bytes]]:
    # Own sessions: a terminal's Ctrl-C reaches only us, and we stop the children in order.
    return {
        name: subprocess.Popen([sys.executable, "-m", "queue_system", name], env=env, start_new_session=True)
        for name in ("worker", "api")
    }


# Without Redis the worker has nothing to finish: a short grace when the embedded one gave up.
NO_REDIS_GRACE_S = 10.0


def supervise(
    children: dict[str, subprocess.Popen[bytes]], stop: threading.Event, keeper: RedisKeeper | None = None
) -> int:
    """Wait for a stop signal, a child's death or an embedded Redis that keeps dying (one that
    dies now and then is restarted by `keeper`). -> exit code."""
    while not stop.wait(0.2):
        gave_up = keeper.check() if keeper is not None else None
        if gave_up:
            logger.error("{}; stopping everything", gave_up)
            return 1
        for name, child in children.items():
            if child.poll() is not None:
                logger.error("{} exited with code {}; stopping everything", name, child.returncode)
                return 1
    return 0


def stop_children(children: dict[str, subprocess.Popen[bytes]], grace_s: float) -> None:
    logger.info("stopping: worker and API finish what they are doing")
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            # The whole group: the dramatiq CLI's forked workers too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def start_redis(settings: Settings) -> tuple[str, EmbeddedRedis | None]:
    """Redis (embedded unless REDIS_URL is set), its key layout checked once, before the API and
    the worker start (storage/layout.py; they check again: one GET). A layout this release cannot
    use stops everything: SystemExit(2)."""
    embedded = None
    if settings.redis_url:
        url = settings.redis_url
    else:
        embedded = EmbeddedRedis(settings.data_dir / "redis")
        url = embedded.start()
        logger.info("Redis: embedded, REDIS_URL={} (data in {})", url, embedded.data_dir)
    try:
        logger.info("{}", ensure_layout_at(dataclasses.replace(settings.redis, url=url)).summary())
    except LayoutError as exc:
        logger.error("cannot start: {}", exc)
        if embedded is not None:
            embedded.stop()
        raise SystemExit(2) from None
    return url, embedded


def start_mailbox(settings: Settings, redis_url: str, env: dict[str, str]) -> DevMailbox | None:
    """Development without SMTP_URL: a local SMTP sink whose messages the dashboard shows."""
    if settings.production or settings.email.smtp_url:
        return None
    sink = DevMailbox(dataclasses.replace(settings.redis, url=redis_url))
    env["SMTP_URL"] = sink.start()
    if not settings.email.default_to:
        env["EMAIL_DEFAULT_TO"] = DEV_RECIPIENT
    logger.info(
        "mailbox: SMTP_URL={} EMAIL_DEFAULT_TO={}; messages at /dashboard/mailbox",
        env["SMTP_URL"],
        env.get("EMAIL_DEFAULT_TO", ",".join(settings.email.default_to)),
    )
    return sink


def start_inbox(settings: Settings, environ: Mapping[str, str], env: dict[str, str]) -> str | None:
    """Development: the API serves its own webhook receiver (DEV_INBOX) unless DEV_INBOX is set.
    -> the receiver's base URL, or None when it is off."""
    if "DEV_INBOX" in environ:
        on = settings.api.dev_inbox  # the user's choice (refused with ENV=production by the settings)
    else:
        on = not settings.production
        if on:
            env["DEV_INBOX"] = "true"
    return f"{settings.api.local_url}/dev/inbox" if on else None


API_START_TIMEOUT_S = 60.0


def wait_for_api(
    settings: Settings, children: dict[str, subprocess.Popen[bytes]], stop: threading.Event
) -> bool:
    """Wait until the API accepts connections (uvicorn listens once its start-up is complete), so
    its start is announced when true, not before; a plain connect, not a request: no access line."""
    host = urlsplit(settings.api.local_url).hostname or "127.0.0.1"
    deadline = time.monotonic() + API_START_TIMEOUT_S
    while time.monotonic() < deadline and not stop.is_set():
        if any(child.poll() is not None for child in children.values()):
            return False
        try:
            with socket.create_connection((host, settings.api.port), timeout=1):
                return True
        except OSError:
            stop.wait(0.1)
    return False


# `make run` is for a laptop: the README's local receiver (127.0.0.1:9000) must be reachable.
DEV_EGRESS_ALLOW = "127.0.0.0/8"


def child_env(environ: Mapping[str, str], redis_url: str, *, production: bool) -> dict[str, str]:
    """The API's and worker's environment: REDIS_URL, and in development 127.0.0.0/8 opened to
    webhooks unless EGRESS_ALLOW_CIDRS is set (set it to empty to open nothing). With ENV=production
    nothing is opened implicitly: only EGRESS_ALLOW_CIDRS opens a blocked range."""
    env = {**environ, "REDIS_URL": redis_url}
    if "EGRESS_ALLOW_CIDRS" in environ:
        return env
    if production:
        logger.info("ENV=production: webhooks reach no blocked range (EGRESS_ALLOW_CIDRS unset)")
        return env
    env["EGRESS_ALLOW_CIDRS"] = DEV_EGRESS_ALLOW
    logger.warning(
        "webhooks may reach {} (EGRESS_ALLOW_CIDRS unset; `make run` opens loopback for local "
        "receivers in development; set EGRESS_ALLOW_CIDRS= to open nothing)",
        DEV_EGRESS_ALLOW,
    )
    return env


def _worker_health(settings: Settings) -> str:
    port = settings.worker.health_port
    return f" (worker health http://127.0.0.1:{port}/health)" if port else ""


def run_all(settings: Settings) -> int:
    """Start everything, wait for Ctrl-C/SIGTERM or a child's death, stop in order. -> exit code."""
    configure_logging(production=settings.production, level=settings.log_level, process="run")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    url, embedded = start_redis(settings)
    env = child_env(os.environ, url, production=settings.production)
    sink = start_mailbox(settings, url, env)
    inbox = start_inbox(settings, os.environ, env)
    children = start_children(env)
    address = settings.api.local_url
    if wait_for_api(settings, children, stop):
        logger.info("API: {} (dashboard {}/dashboard/, docs {}/schema)", address, address, address)
        if inbox:
            logger.info(
                "inbox: webhooks to {}/{{name}} show at {}/dashboard/inbox and in `queue-system inbox`",
                inbox,
                address,
            )
        run_state.write(settings.data_dir, address)  # for the CLI in another terminal (run_state.py)
        logger.info("ready{}; Ctrl-C stops everything", _worker_health(settings))
    elif not stop.is_set() and all(child.poll() is None for child in children.values()):
        logger.warning("the API did not accept connections at {} within {:g} s", address, API_START_TIMEOUT_S)
    keeper = RedisKeeper(embedded) if embedded is not None else None
    try:
        code = supervise(children, stop, keeper)
    finally:
        run_state.remove(settings.data_dir)
        # A little longer than the worker's own drain (worker/launch.py: request timeout + 30 s).
        grace = settings.worker.request_timeout_ms / 1000 + 35
        stop_children(children, grace if embedded is None or embedded.running else NO_REDIS_GRACE_S)
        if sink is not None:
            sink.stop()
        if embedded is not None:
            embedded.stop()
            logger.info("embedded Redis stopped (data kept in {})", embedded.data_dir)
    return code
