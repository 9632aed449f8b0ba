"""Typed settings, read from the environment once at the edge (`cmd/`) and passed down.

Durations accept `500ms`, `10s`, `5m`, `24h`, `7d` or a bare number of seconds. A bad value raises
ConfigError naming the variable, and start-up stops with that message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from queue_system.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, None: 1000}
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|kib|mb|mib)?\s*$", re.IGNORECASE)
_UNIT_BYTES = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1_000_000, "mib": 1_048_576, None: 1}


def parse_duration_ms(text: str) -> int:
    """`10s` -> 10000. Raises ValueError with a readable message."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (use e.g. 500ms, 10s, 5m, 24h, 7d)")
    number, unit = match.groups()
    return int(float(number) * _UNIT_MS[unit])


def parse_size_bytes(text: str) -> int:
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size (use e.g. 1048576, 512KiB, 1MiB)")
    number, unit = match.groups()
    return int(number) * _UNIT_BYTES[unit.lower() if unit else None]


@dataclass(frozen=True, slots=True)
class ApiSettings:
    host: str = "0.0.0.0"  # noqa: S104 - a service listens on all interfaces; set API_HOST to narrow
    port: int = 8080
    max_body_bytes: int = 1_048_576
    graceful_timeout_s: int = 30


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    processes: int = 2
    threads: int = 8
    prefetch: int = 0  # 0 = dramatiq's default (2 x threads)
    retry_interval_ms: int = 10_000
    retry_max_age_ms: int = 86_400_000
    request_timeout_ms: int = 30_000
    max_retries: int = 3
    backoff_min_ms: int = 1_000
    backoff_max_ms: int = 3_600_000
    lease_ms: int = 15_000
    poll_interval_ms: int = 100
    task_modules: tuple[str, ...] = ()


DEFAULT_EMAIL_FROM = "queue_system@localhost"


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where the `email` kind sends: SMTP_URL parsed."""

    host: str
    port: int
    ssl: bool = False  # smtps://: TLS from the first byte
    starttls: bool = False  # smtp://...?starttls=true: upgrade the plain connection
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class EmailSettings:
    # repr=False: the URL may carry a password, and settings end up in logs.
    smtp_url: str | None = field(default=None, repr=False)  # None: the `email` kind fails at once
    email_from: str = DEFAULT_EMAIL_FROM
    default_to: tuple[str, ...] = ()  # where a plain-string `email` payload goes
    timeout_ms: int = 30_000  # per SMTP socket operation

    @property
    def smtp(self) -> SmtpServer | None:
        return parse_smtp_url(self.smtp_url) if self.smtp_url else None


@dataclass(frozen=True, slots=True)
class Settings:
    env: str = "development"
    log_level: str = "INFO"
    redis_url: str | None = None  # None: `make run` starts an embedded Redis under data_dir
    data_dir: Path = Path("var")
    retention_ms: int = 7 * 86_400_000
    max_timeout_ms: int = 15 * 60_000  # the largest per-task `timeout` a client may ask for
    api: ApiSettings = field(default_factory=ApiSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    email: EmailSettings = field(default_factory=EmailSettings)

    @property
    def production(self) -> bool:
        return self.env == "production"


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        return value if value not in (None, "") else None

    def text(self, name: str, default: str, choices: tuple[str, ...] | None = None) -> str:
        value = self.raw(name) or default
        if choices and value not in choices:
            raise ConfigError(name, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(name, f"{value!r} is not a whole number") from None
        if not low <= number <= high:
            raise ConfigError(name, f"{number} is outside {low}..{high}")
        return number

    def duration(self, name: str, default_ms: int, low_ms: int = 1) -> int:
        value = self.raw(name)
        if value is None:
            return default_ms
        try:
            ms = parse_duration_ms(value)
        except ValueError as exc:
            raise ConfigError(name, str(exc)) from None
        if ms < low_ms:
            raise ConfigError(name, f"{value!r} is shorter than the minimum {low_ms}ms")
        return ms

    def size(self, name: str, default: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            return parse_size_bytes(value)
        except ValueError as exc:
            raise ConfigError(name, str(exc)) from None


def _redis_url(r: _Reader) -> str | None:
    url = r.raw("REDIS_URL")
    if url:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("REDIS_URL", f"{url!r} must start with redis://, rediss:// or unix://")
        return url
    addr = r.raw("REDIS_ADDR")
    if not addr:
        return None
    password = r.raw("REDIS_PASSWORD")
    db = r.integer("REDIS_DB", 0, 0, 1023)
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{addr}/{db}"


def load_settings(env: Mapping[str, str]) -> Settings:
    r = _Reader(env)
    api = ApiSettings(
        host=r.text("API_HOST", "0.0.0.0"),  # noqa: S104
        port=r.integer("API_PORT", 8080, 1, 65535),
        max_body_bytes=r.size("API_MAX_BODY_BYTES", 1_048_576),
        graceful_timeout_s=r.duration("API_SHUTDOWN_TIMEOUT", 30_000) // 1000,
    )
    modules = tuple(m.strip() for m in (r.raw("TASK_MODULES") or "").split(",") if m.strip())
    worker = WorkerSettings(
        processes=r.integer("WORKER_PROCESSES", 2, 1, 256),
        threads=r.integer("WORKER_CONCURRENCY", 8, 1, 1024),
        prefetch=r.integer("WORKER_PREFETCH", 0, 0, 10_000),
        retry_interval_ms=r.duration("WORKER_RETRY_INTERVAL", 10_000, low_ms=10),
        retry_max_age_ms=r.duration("WORKER_RETRY_MAX_AGE", 86_400_000),
        request_timeout_ms=r.duration("WORKER_REQUEST_TIMEOUT", 30_000, low_ms=10),
        max_retries=r.integer("WORKER_MAX_RETRIES", 3, 0, 100),
        backoff_min_ms=r.duration("WORKER_BACKOFF_MIN", 1_000),
        backoff_max_ms=r.duration("WORKER_BACKOFF_MAX", 3_600_000),
        lease_ms=r.duration("WORKER_LEASE", 15_000, low_ms=1_000),
        poll_interval_ms=r.duration("WORKER_POLL_INTERVAL", 100, low_ms=10),
        task_modules=modules,
    )
    return Settings(
        env=r.text("ENV", "development", ("development", "production")),
        log_level=_log_level(r),
        redis_url=_redis_url(r),
        data_dir=Path(r.text("DATA_DIR", "var")),
        retention_ms=r.duration("TASK_RETENTION", 7 * 86_400_000, low_ms=1_000),
        max_timeout_ms=r.duration("TASK_MAX_TIMEOUT", 15 * 60_000, low_ms=1_000),
        api=api,
        worker=worker,
        email=_email(r),
    )


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse_smtp_url(url: str) -> SmtpServer:
    """`smtp://user:pass@host:587?starttls=true` -> SmtpServer. Raises ValueError with a readable message."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        # Not echoing the URL: it may carry a password, and this message is printed at start-up.
        raise ValueError("must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("no host (use e.g. smtp://localhost:1025)")
    port = parts.port  # raises ValueError for a port that is not a number or out of range
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"starttls"})
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r} (only starttls=true|false)")
    flag = (query.get("starttls") or ["false"])[-1].lower()
    if flag not in _TRUE + _FALSE:
        raise ValueError(f"starttls={flag!r} is not true or false")
    ssl = parts.scheme == "smtps"
    starttls = flag in _TRUE
    if ssl and starttls:
        raise ValueError("smtps:// is TLS already; starttls=true goes with smtp://")
    return SmtpServer(
        host=parts.hostname,
        port=port or (465 if ssl else 25),
        ssl=ssl,
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def _address(name: str, value: str) -> str:
    value = value.strip()
    if "@" not in value or "\r" in value or "\n" in value:
        raise ConfigError(name, f"{value!r} is not an email address")
    return value


def _email(r: _Reader) -> EmailSettings:
    url = r.raw("SMTP_URL")
    if url:
        try:
            parse_smtp_url(url)
        except ValueError as exc:
            raise ConfigError("SMTP_URL", str(exc)) from None
    sender = _address("EMAIL_FROM", r.raw("EMAIL_FROM") or DEFAULT_EMAIL_FROM)
    default_to = tuple(
        _address("EMAIL_DEFAULT_TO", a) for a in (r.raw("EMAIL_DEFAULT_TO") or "").split(",") if a.strip()
    )
    return EmailSettings(
        smtp_url=url,
        email_from=sender,
        default_to=default_to,
        timeout_ms=r.duration("SMTP_TIMEOUT", 30_000, low_ms=10),
    )


def _log_level(r: _Reader) -> str:
    level = (r.raw("LOG_LEVEL") or "INFO").upper()
    if level not in ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("LOG_LEVEL", f"{level!r} is not one of TRACE, DEBUG, INFO, WARNING, ERROR")
    return level
