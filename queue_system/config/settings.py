"""Typed settings, read from the environment once at the edge (`queue_system.cli.main`) and passed down.

Each setting is declared once, as a field of these frozen dataclasses (`setting()`, declare.py): its
variable, parser with bounds, default, help and secrecy, where the field's name and type say where
the value lands. The loader, `SPEC` and the settings page (`markdown_table()`) are read off those
fields. Durations accept `500ms`, `10s`, `5m`, `24h`, `7d` or a bare number of seconds. A bad value
raises ConfigError naming the variable, and start-up stops with it.

To add one: a field in its group, e.g. in `WorkerSettings`

    drain_timeout_ms: int = setting("WORKER_DRAIN_TIMEOUT", duration(100), "30s", "what it does")
"""

# ruff: noqa: RUF009 - `setting()` is a dataclasses.field() with the declaration as its metadata

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import quote

from queue_system.config import declare
from queue_system.config.api_settings import ApiSettings
from queue_system.config.declare import Setting, group, read, setting
from queue_system.config.delegated import sentinels
from queue_system.config.parsing import (
    Parser,
    SmtpServer,
    choice,
    duration,
    integer,
    parse_duration_ms,
    parse_size_bytes,
    parse_smtp_url,
    redis_url,
    text,
)
from queue_system.config.worker_settings import EmailSettings, SecuritySettings, WorkerSettings
from queue_system.errors import ConfigError
from queue_system.storage.connection import RedisTarget

# Others import these from here (the settings are where a reader looks for them).
__all__ = [
    "SPEC",
    "ApiSettings",
    "EmailSettings",
    "RedisAddress",
    "SecuritySettings",
    "Settings",
    "SmtpServer",
    "Var",
    "WorkerSettings",
    "api_url_from",
    "data_dir_from",
    "load_settings",
    "markdown_table",
    "parse_duration_ms",
    "parse_size_bytes",
    "parse_smtp_url",
]


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """REDIS_URL in parts: read (and checked) only when REDIS_URL is unset, to build `Settings.redis_url`."""

    addr: str | None = setting(
        "REDIS_ADDR", text("`host:port`"), None, "Redis as `host:port`, when `REDIS_URL` is unset"
    )
    password: str | None = setting(
        "REDIS_PASSWORD", text(), None, "the password for `REDIS_ADDR`", secret=True
    )
    db: int = setting("REDIS_DB", integer(0, 1023), "0", "the database number for `REDIS_ADDR`")

    @staticmethod
    def url_from(env: Mapping[str, str]) -> str | None:
        """redis://[:password@]addr/db from REDIS_ADDR and its parts, or None without REDIS_ADDR."""
        addr: str | None = read(RedisAddress, "addr", env)
        if not addr:
            return None
        password: str | None = read(RedisAddress, "password", env)
        auth = f":{quote(password, safe='')}@" if password else ""
        url = f"redis://{auth}{addr}/{read(RedisAddress, 'db', env)}"
        try:
            return redis_url(url)  # a port that is not a number: here, not a traceback in redis-py
        except ValueError as exc:
            raise ConfigError("REDIS_ADDR", str(exc)) from None


@dataclass(frozen=True, slots=True)
class Settings:
    env: str = setting(
        "ENV",
        choice("development", "production"),
        "development",
        "`production`: JSON log lines, no access log; `development`: coloured logs",
    )
    log_level: str = setting(
        "LOG_LEVEL",
        choice("TRACE", "DEBUG", "INFO", "WARNING", "ERROR", upper=True),
        "INFO",
        "log level (any case)",
    )
    redis_url: str | None = setting(  # None: `make run` starts an embedded Redis under data_dir
        "REDIS_URL",
        Parser(redis_url, "`redis://`, `rediss://`, `unix://`"),
        None,
        "`redis://[:password@]host:port/db`, `rediss://...` or `unix:///path`. Unset: `make run` starts "
        "an embedded Redis; `make run-api`/`run-worker` refuse to start",
        parts=RedisAddress,
        secret=True,  # the URL may carry a password
    )
    sentinels: tuple[tuple[str, int], ...] = setting(  # set: the primary is the one these sentinels name
        "REDIS_SENTINELS",
        sentinels(),
        None,
        "Sentinels to ask where the primary is (docs: High availability); `REDIS_URL` then gives "
        "only the data nodes' password, db and `rediss://` TLS",
        unset=(),
    )
    sentinel_master: str | None = setting(
        "REDIS_SENTINEL_MASTER",
        text("a service name"),
        None,
        "the service the sentinels watch (`sentinel monitor <name> ...`); needed with `REDIS_SENTINELS`",
    )
    sentinel_password: str | None = setting(
        "REDIS_SENTINEL_PASSWORD",
        text(),
        None,
        "the sentinels' own password (`requirepass` in sentinel.conf), when they have one",
        secret=True,
    )
    min_replicas: int = setting(  # replicas a submit waits for (WAIT)
        "REDIS_MIN_REPLICAS",
        integer(0, 16),
        "0",
        "a submit answers `201` only once this many replicas hold the task (`WAIT`); fewer within "
        "`REDIS_MIN_REPLICAS_TIMEOUT`: `503` (retry with the same `id`)",
    )
    min_replicas_timeout_ms: int = setting(
        "REDIS_MIN_REPLICAS_TIMEOUT",
        duration(1, high_ms=5_000),
        "1s",
        "how long a submit waits for `REDIS_MIN_REPLICAS` replicas",
    )
    data_dir: Path = setting(
        "DATA_DIR", Parser(Path, "a directory"), "var", "where `make run` keeps the embedded Redis's data"
    )
    api: ApiSettings = group(ApiSettings)
    worker: WorkerSettings = group(WorkerSettings)
    retention_ms: int = setting(
        "TASK_RETENTION",
        duration(1_000),
        "7d",
        "finished tasks (completed, failed, cancelled) are deleted this long after they finish",
    )
    max_timeout_ms: int = setting(
        "TASK_MAX_TIMEOUT", duration(1_000), "15m", "the largest per-task `timeout` a client may ask for"
    )
    batch_max: int = setting(
        "TASK_BATCH_MAX",
        integer(1, 10_000),
        "1000",
        "most tasks one `POST /api/v1/tasks/batch` may carry (`422` naming `tasks` beyond); the body "
        "still fits in `API_MAX_BODY_BYTES`",
    )
    schedules_max: int = setting(
        "SCHEDULES_MAX",
        integer(1, 1_000_000),
        "10000",
        "most schedules one deployment holds: a create beyond it is a `409` naming the limit "
        "(changing or re-creating an existing schedule is not counted)",
    )
    bulk_rate: int = setting(
        "BULK_RATE",
        integer(1, 100_000),
        "200",
        "tasks per second a bulk operation acts on when the request names no `rate`",
    )
    bulk_max_rate: int = setting(
        "BULK_MAX_RATE",
        integer(1, 100_000),
        "5000",
        "the largest `rate` a bulk operation may ask for (more: 422)",
    )
    operation_retention_ms: int = setting(
        "OPERATION_RETENTION",
        duration(1_000),
        "7d",
        "an ended bulk operation (done, cancelled, failed) is kept this long for reading back",
    )
    email: EmailSettings = group(EmailSettings)
    security: SecuritySettings = group(SecuritySettings)

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def redis(self) -> RedisTarget:
        """Where every Redis client connects (storage/connection.py builds them)."""
        return RedisTarget(self.redis_url or "", self.sentinels, self.sentinel_master, self.sentinel_password)


# Every variable, in the order of the settings page (bench/, docker-compose and docs tests read it).
Var: TypeAlias = Setting[Any]  # the name the tests and bench/ know it by
SPEC: tuple[Var, ...] = tuple(declare.declared(Settings))


def load_settings(env: Mapping[str, str]) -> Settings:
    """Every declared variable parsed, REDIS_URL built from its parts when unset, then the rules
    between variables checked."""
    settings = Settings(**declare.read_fields(Settings, env))
    if settings.sentinels and not settings.sentinel_master:
        raise ConfigError("REDIS_SENTINEL_MASTER", "must be set with REDIS_SENTINELS (the service name)")
    if settings.sentinel_master and not settings.sentinels:
        raise ConfigError("REDIS_SENTINELS", "must be set with REDIS_SENTINEL_MASTER (host:port,...)")
    url = settings.redis_url or RedisAddress.url_from(env)
    if settings.sentinels:
        if url and url.startswith("unix://"):
            raise ConfigError("REDIS_URL", "unix:// cannot go with REDIS_SENTINELS (they name a host)")
        # The URL's host is ignored with sentinels: it carries only auth, db and TLS (or nothing).
        url = url or "redis://"
    if settings.api.dev_inbox and settings.production:
        raise ConfigError("DEV_INBOX", "the development inbox is not served with ENV=production")
    return replace(settings, redis_url=url)


def api_url_from(env: Mapping[str, str]) -> tuple[str, str] | None:
    """The API's address for a client on this machine from the server's own settings, when
    API_HOST or API_PORT is set -> (url, why). Raises ConfigError naming a malformed variable."""
    named = {attribute: declare.setting_of(ApiSettings, attribute).name for attribute in ("host", "port")}
    given = [f"{name}={env[name]}" for name in named.values() if env.get(name)]
    if not given:
        return None
    api = ApiSettings(host=read(ApiSettings, "host", env), port=read(ApiSettings, "port", env))
    return api.local_url, f"from {' and '.join(given)}"


def data_dir_from(env: Mapping[str, str]) -> Path:
    """DATA_DIR (where `make run` keeps its state), or its default."""
    path: Path = read(Settings, "data_dir", env)
    return path


def markdown_table() -> str:
    """The settings page's table, as the declaration says it (docs/hooks/pages.py renders it)."""
    return declare.markdown_table(Settings)
