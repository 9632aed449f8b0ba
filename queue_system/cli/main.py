"""The `queue-system` command: `queue-system api | worker | run` (`cmd/*.py` call it too).

Settings are read here once, at the edge, and passed down; a bad value stops with the variable's
name and exit code 2. The product's modules are imported inside each command, so that
`queue-system worker` (which becomes the dramatiq CLI) never loads Litestar.
"""

from __future__ import annotations

import os
import sys

import click

from queue_system.config.settings import Settings, load_settings
from queue_system.errors import ConfigError


def settings_or_exit(*, need_redis: bool = True) -> Settings:
    """The settings from the environment, or exit 2 with a message naming the variable."""
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        raise SystemExit(2) from None
    if need_redis and not settings.redis_url:
        sys.stderr.write(
            "configuration error: REDIS_URL (or REDIS_ADDR) is not set; "
            "`make run` starts an embedded Redis for you\n"
        )
        raise SystemExit(2)
    return settings


def warn_about_redis(settings: Settings) -> None:
    """Log what the connected Redis would lose (eviction, no persistence, too few replicas):
    warnings, not refusals (docs: operations/high-availability.md)."""
    import redis
    from loguru import logger

    from queue_system.storage.connection import check_durability, sync_client

    client = sync_client(settings.redis, socket_connect_timeout=5, socket_timeout=5)
    try:
        logger.info("Redis: {}", settings.redis.describe())
        for warning in check_durability(client, settings.min_replicas):
            logger.warning("Redis: {}", warning)
    except redis.RedisError as exc:  # the layout check reached it a moment ago: not fatal here
        logger.warning("Redis: could not read its configuration ({})", exc)
    finally:
        client.close()


def _user_modules_importable() -> None:
    # TASK_MODULES name the user's modules relative to the working directory, as uvicorn's
    # --app-dir and dramatiq's --path (both "." by default) do; a console script's sys.path starts
    # at its bin/ directory instead.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """queue_system: a task queue you can trust with webhooks. Settings come from the environment
    (docs: settings.md)."""


@main.command()
def api() -> None:
    """Serve the HTTP API (needs REDIS_URL)."""
    settings = settings_or_exit()
    _user_modules_importable()
    import uvicorn
    from loguru import logger

    from queue_system.api.app import create_app
    from queue_system.logging import configure_logging
    from queue_system.storage.layout import ensure_layout_at

    configure_logging(production=settings.production, level=settings.log_level, process="api")
    try:
        app = create_app(settings)
        logger.info("{}", ensure_layout_at(settings.redis).summary())
        warn_about_redis(settings)
    except ConfigError as exc:  # API keys: a bad entry, or production without keys; the key layout
        sys.stderr.write(f"configuration error: {exc}\n")
        raise SystemExit(2) from None
    uvicorn.run(
        app,
        host=settings.api.host,
        port=settings.api.port,
        log_config=None,
        access_log=not settings.production,
        timeout_graceful_shutdown=settings.api.graceful_timeout_s,
        server_header=False,
        # The client address is ours to decide (API_TRUSTED_PROXIES, api/auth.py): uvicorn's own
        # X-Forwarded-For handling trusts 127.0.0.1 by default, so anything local could pick one.
        proxy_headers=False,
    )


@main.command()
def worker() -> None:
    """Run the worker: the dramatiq CLI's master, with GET /health and /metrics (needs REDIS_URL)."""
    from loguru import logger

    from queue_system.logging import configure_logging
    from queue_system.storage.layout import LayoutError, ensure_layout_at
    from queue_system.worker.launch import run_worker

    settings = settings_or_exit()
    configure_logging(production=settings.production, level=settings.log_level, process="worker-master")
    try:  # once, before the dramatiq master forks the worker processes
        logger.info("{}", ensure_layout_at(settings.redis).summary())
        warn_about_redis(settings)
    except LayoutError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        raise SystemExit(2) from None
    sys.exit(run_worker(settings))


@main.command()
def run() -> None:
    """Everything in one command: Redis (embedded unless REDIS_URL is set), the API and a worker."""
    from queue_system.local.launcher import run_all

    sys.exit(run_all(settings_or_exit(need_redis=False)))


def _add_client_commands() -> None:
    # The client commands (tasks, stats, workers, destinations, purge; inbox, config) talk to the
    # API over HTTP.
    from queue_system.cli import client as cli_client
    from queue_system.cli import dev as cli_dev
    from queue_system.cli import queues as cli_queues
    from queue_system.cli import schedules as cli_schedules

    for command in cli_client.COMMANDS + cli_dev.COMMANDS + cli_schedules.COMMANDS + cli_queues.COMMANDS:
        main.add_command(command)


_add_client_commands()
