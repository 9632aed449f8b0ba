"""Typed settings, read from the environment once at the edge (`queue_system.cli.main`) and passed down.

`SPEC` is the one table of variables: name, parser (with its bounds), default and help. The loader
reads it, the dataclasses take their defaults from it, and a test holds the README's Settings table
to it (`markdown_table()` renders it). Durations accept `500ms`, `10s`, `5m`, `24h`, `7d` or a bare
number of seconds. A bad value raises ConfigError naming the variable, and start-up stops with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from queue_system.config.parsing import (
    Parser,
    SmtpServer,
    choice,
    duration,
    email_address,
    email_addresses,
    integer,
    module_names,
    parse_duration_ms,
    parse_size_bytes,
    parse_smtp_url,
    redis_url,
    size,
    smtp_url,
    text,
)
from queue_system.errors import ConfigError
from queue_system.storage.connection import RedisTarget, parse_sentinels
from queue_system.storage.rate_limit import Rate
from queue_system.transports.egress import parse_cidrs, parse_ports
from queue_system.transports.egress_ranges import IPNetwork
from queue_system.transports.signing import parse_secrets

# Others import these from here (the settings are where a reader looks for them).
__all__ = [
    "SPEC",
    "ApiSettings",
    "EmailSettings",
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


# ---------------------------------------------------------------- the table


@dataclass(frozen=True, slots=True)
class Var:
    """One environment variable."""

    name: str
    parser: Parser
    default: str | None  # as it would be written in the environment; None: unset
    help: str
    # Where load_settings puts the value ("api.port"); None: read by hand (the REDIS_* parts).
    target: str | None = None
    unset: Any = None  # the value when unset and there is no default

    def value(self, raw: str | None) -> Any:
        """Parse `raw` (None or '' for unset). Raises ConfigError naming the variable."""
        source = raw if raw not in (None, "") else self.default
        if source is None:
            return self.unset
        try:
            return self.parser.parse(source)
        except ValueError as exc:
            raise ConfigError(self.name, str(exc)) from None


def _key_list(variable: str) -> Callable[[str], str]:
    # Checked entry by entry when the API builds its key ring (api/auth.py): the rules live there.
    def parse(value: str) -> str:
        return ",".join(item.strip() for item in value.split(",") if item.strip())

    return parse


def _keys_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise ValueError(f"{value!r} is not a readable file")
    return path


def _cidrs(variable: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        parse_cidrs(value, variable)  # the policy is built from the text (transports.egress)
        return value.strip()

    return parse


def _networks(variable: str) -> Callable[[str], tuple[IPNetwork, ...]]:
    return lambda value: parse_cidrs(value, variable)


def _ports(value: str) -> str:
    parse_ports(value)
    return value.strip()


def _signing_secrets(value: str) -> str:
    try:
        parse_secrets(value)
    except ValueError as exc:
        # Without the variable's name (the settings add it) and never the secret itself.
        raise ValueError(str(exc).removeprefix("WEBHOOK_SIGNING_SECRET: ")) from None
    return " ".join(value.split())


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{value!r} is not true or false")


# Var(name, parser with its bounds, default as written in the environment, help, where it goes).
SPEC: tuple[Var, ...] = (
    Var(
        "ENV",
        choice("development", "production"),
        "development",
        "`production`: JSON log lines, no access log; `development`: coloured logs",
        "env",
    ),
    Var(
        "LOG_LEVEL",
        choice("TRACE", "DEBUG", "INFO", "WARNING", "ERROR", upper=True),
        "INFO",
        "log level (any case)",
        "log_level",
    ),
    Var(
        "REDIS_URL",
        Parser(redis_url, "`redis://`, `rediss://`, `unix://`"),
        None,
        "`redis://[:password@]host:port/db`, `rediss://...` or `unix:///path`. Unset: `make run` starts "
        "an embedded Redis; `make run-api`/`run-worker` refuse to start",
    ),
    Var("REDIS_ADDR", text("`host:port`"), None, "Redis as `host:port`, when `REDIS_URL` is unset"),
    Var("REDIS_PASSWORD", text(), None, "the password for `REDIS_ADDR`"),
    Var("REDIS_DB", integer(0, 1023), "0", "the database number for `REDIS_ADDR`"),
    Var(
        "REDIS_SENTINELS",
        Parser(parse_sentinels, "`host:port`, comma-separated"),
        None,
        "Sentinels to ask where the primary is (README, High availability); `REDIS_URL` then gives "
        "only the data nodes' password, db and `rediss://` TLS",
        "sentinels",
        unset=(),
    ),
    Var(
        "REDIS_SENTINEL_MASTER",
        text("a service name"),
        None,
        "the service the sentinels watch (`sentinel monitor <name> ...`); needed with `REDIS_SENTINELS`",
        "sentinel_master",
    ),
    Var(
        "REDIS_SENTINEL_PASSWORD",
        text(),
        None,
        "the sentinels' own password (`requirepass` in sentinel.conf), when they have one",
        "sentinel_password",
    ),
    Var(
        "REDIS_MIN_REPLICAS",
        integer(0, 16),
        "0",
        "a submit answers `201` only once this many replicas hold the task (`WAIT`); fewer within "
        "`REDIS_MIN_REPLICAS_TIMEOUT`: `503` (retry with the same `id`)",
        "min_replicas",
    ),
    Var(
        "REDIS_MIN_REPLICAS_TIMEOUT",
        duration(1, high_ms=5_000),
        "1s",
        "how long a submit waits for `REDIS_MIN_REPLICAS` replicas",
        "min_replicas_timeout_ms",
    ),
    Var(
        "DATA_DIR",
        Parser(Path, "a directory"),
        "var",
        "where `make run` keeps the embedded Redis's data",
        "data_dir",
    ),
    # A service listens on all interfaces; set API_HOST to narrow.
    Var("API_HOST", text("an address"), "0.0.0.0", "the API's listen address", "api.host"),  # noqa: S104
    Var("API_PORT", integer(1, 65535), "8080", "the API's port", "api.port"),
    Var(
        "API_MAX_BODY_BYTES",
        size(),
        "1MiB",
        "largest accepted request body (`413` beyond)",
        "api.max_body_bytes",
    ),
    Var(
        "API_SHUTDOWN_TIMEOUT",
        duration(unit_ms=1000),
        "30s",
        "on SIGTERM, how long in-flight requests may take to finish",
        "api.graceful_timeout_s",
    ),
    Var(
        "API_KEYS",
        Parser(_key_list("API_KEYS"), "keys, comma-separated"),
        None,
        "keys that may do everything (`Authorization: Bearer <key>` or `X-API-Key`); an entry "
        "`sha256:<hex>` is a key's digest. Unset with `ENV=production`: the API refuses to start",
        "api.keys",
        unset="",
    ),
    Var(
        "API_READ_KEYS",
        Parser(_key_list("API_READ_KEYS"), "keys, comma-separated"),
        None,
        "keys that may only read (`GET`); a change is `403`",
        "api.read_keys",
        unset="",
    ),
    Var(
        "API_KEYS_FILE",
        Parser(_keys_file, "a file"),
        None,
        "a file of keys like `API_KEYS`, one per line (`#` comments)",
        "api.keys_file",
    ),
    Var(
        "API_AUTH",
        choice("enabled", "disabled"),
        "enabled",
        "`disabled`: no key is asked for, even in production (behind a gateway that checks them)",
        "api.auth",
    ),
    Var(
        "API_RATE_LIMIT",
        Parser(Rate.parse, "a rate: `100/s`, `6000/min`, `10/5s`"),
        None,
        "requests per key (per client address without keys), strict across API processes; `429` "
        "beyond, with `Retry-After`. Unset: no limit",
        "api.rate_limit",
    ),
    Var(
        "API_AUTH_FAILURES",
        Parser(lambda v: Rate.parse(v, field="API_AUTH_FAILURES"), "a rate: `10/min`, `5/10s`"),
        "10/min",
        "wrong API keys (API or dashboard sign-in) one client address may present in that time; then it "
        "is locked out (`429` with `Retry-After`, even for a valid key) for `API_AUTH_LOCKOUT`",
        "api.auth_failures",
    ),
    Var(
        "API_AUTH_LOCKOUT",
        duration(1_000),
        "1m",
        "the first lockout; each further one doubles, up to 1 h (forgotten a day after the last)",
        "api.auth_lockout_ms",
    ),
    Var(
        "API_TRUSTED_PROXIES",
        Parser(_networks("API_TRUSTED_PROXIES"), "CIDRs, comma-separated"),
        None,
        "proxies whose `X-Forwarded-For` names the client (for the lockout and the rate limit); "
        "unset: the peer address is the client",
        "api.trusted_proxies",
        unset=(),
    ),
    Var(
        "METRICS_PUBLIC",
        Parser(_boolean, "`true`, `false`"),
        "false",
        "`true`: the API's and the worker's `GET /metrics` answer without a key; `false`: any API key "
        "(read-only too) when keys are configured",
        "api.metrics_public",
    ),
    Var(
        "DEV_INBOX",
        Parser(_boolean, "`true`, `false`"),
        "false",
        "`true`: the API serves the development inbox, a webhook receiver of its own (`/dev/inbox/{name}`; "
        "dashboard Inbox, `queue-system inbox`). `make run` turns it on in development unless set; "
        "refused with `ENV=production`",
        "api.dev_inbox",
    ),
    Var("WORKER_PROCESSES", integer(1, 256), "2", "worker processes", "worker.processes"),
    Var("WORKER_CONCURRENCY", integer(1, 1024), "8", "threads per worker process", "worker.threads"),
    Var(
        "WORKER_PREFETCH",
        integer(0, 10_000),
        "0",
        "messages each process holds ahead (`0`: Dramatiq's default, 2 x threads)",
        "worker.prefetch",
    ),
    Var(
        "WORKER_REQUEST_TIMEOUT", duration(10), "30s", "webhook request timeout", "worker.request_timeout_ms"
    ),
    Var("WORKER_RETRY_INTERVAL", duration(10), "10s", "webhook retry interval", "worker.retry_interval_ms"),
    Var(
        "WORKER_RETRY_MAX_AGE",
        duration(),
        "24h",
        "webhooks stop retrying this long after creation",
        "worker.retry_max_age_ms",
    ),
    Var(
        "WORKER_MAX_RETRIES",
        integer(0, 100),
        "3",
        "retries for the backoff kinds (every kind but webhook)",
        "worker.max_retries",
    ),
    Var(
        "WORKER_BACKOFF_MIN",
        duration(),
        "1s",
        "exponential backoff: the first retry's bound (full jitter)",
        "worker.backoff_min_ms",
    ),
    Var(
        "WORKER_BACKOFF_MAX",
        duration(),
        "1h",
        "exponential backoff: the longest wait",
        "worker.backoff_max_ms",
    ),
    Var(
        "WORKER_LEASE",
        duration(1_000),
        "15s",
        "a running task's lease, renewed every third of it; a task whose worker died is recovered within "
        "about this long",
        "worker.lease_ms",
    ),
    Var(
        "WORKER_POLL_INTERVAL",
        duration(10),
        "100ms",
        "how often each worker process dispatches due retries and checks leases (a retry starts at most "
        "about this much late)",
        "worker.poll_interval_ms",
    ),
    Var(
        "WORKER_MAX_INFLIGHT",
        integer(1, 10_000),
        "256",
        "webhook deliveries in flight per worker process (sent on its event loop, not on a thread; a "
        "thread waits for room beyond this)",
        "worker.max_inflight",
    ),
    Var(
        "WORKER_HEALTH_PORT",
        integer(0, 65535),
        "8082",
        "the worker's `GET /health` (`200` connected and consuming, `503` with the reason); `0`: not served",
        "worker.health_port",
    ),
    Var(
        "WORKER_METRICS_PORT",
        integer(0, 65535),
        "9191",
        "the worker's Prometheus `GET /metrics`, summed across its processes; `0`: not served",
        "worker.metrics_port",
    ),
    Var(
        "WEBHOOK_MAX_INFLIGHT_PER_HOST",
        integer(1, 100_000),
        "256",
        "webhook requests in flight to one host (scheme, host, port), across all workers; more wait, parked",
        "worker.max_inflight_per_host",
    ),
    Var(
        "WEBHOOK_MAX_INFLIGHT_PER_ENDPOINT",
        integer(1, 100_000),
        "64",
        "webhook requests in flight to one endpoint (the URL without its query, or its `endpoint` key), "
        "across all workers, within its host's cap (never more than WEBHOOK_MAX_INFLIGHT_PER_HOST); "
        "more wait, parked",
        "worker.max_inflight_per_endpoint",
    ),
    Var(
        "WEBHOOK_BREAKER_THRESHOLD",
        integer(1, 10_000),
        "5",
        "failures in a row that open a circuit breaker: an endpoint's (5xx, response timeouts) or a "
        "host's (DNS, refused, connect timeout, TLS)",
        "worker.breaker_threshold",
    ),
    Var(
        "WEBHOOK_BREAKER_COOLDOWN",
        duration(100),
        "5s",
        "how long an open destination waits before one probe; doubles after each failed probe",
        "worker.breaker_cooldown_ms",
    ),
    Var(
        "WEBHOOK_BREAKER_MAX_COOLDOWN",
        duration(100),
        "5m",
        "the longest cool-down",
        "worker.breaker_max_cooldown_ms",
    ),
    Var(
        "TASK_RETENTION",
        duration(1_000),
        "7d",
        "finished tasks (completed, failed, cancelled) are deleted this long after they finish",
        "retention_ms",
    ),
    Var(
        "TASK_MODULES",
        Parser(module_names, "module names, comma-separated"),
        None,
        "modules with your own task kinds, imported by the API and the worker",
        "worker.task_modules",
        unset=(),
    ),
    Var(
        "TASK_MAX_TIMEOUT",
        duration(1_000),
        "15m",
        "the largest per-task `timeout` a client may ask for",
        "max_timeout_ms",
    ),
    Var(
        "TASK_BATCH_MAX",
        integer(1, 10_000),
        "1000",
        "most tasks one `POST /api/v1/tasks/batch` may carry (`422` naming `tasks` beyond); the body "
        "still fits in `API_MAX_BODY_BYTES`",
        "batch_max",
    ),
    Var(
        "TASK_MIN_RETRY_DELAY",
        duration(10),
        "1s",
        "the shortest `retry.interval` / `retry.min_delay` a task may ask for (shorter: 422)",
        "worker.min_retry_delay_ms",
    ),
    Var(
        "SMTP_URL",
        Parser(smtp_url, "`smtp://`, `smtps://`"),
        None,
        "`smtp://[user:pass@]host[:port][?starttls=true]` or `smtps://...`; unset: email tasks fail at once",
        "email.smtp_url",
    ),
    Var(
        "EMAIL_FROM",
        Parser(email_address, "an address"),
        "queue_system@localhost",
        "the sender of email tasks",
        "email.email_from",
    ),
    Var(
        "EMAIL_DEFAULT_TO",
        Parser(email_addresses, "addresses, comma-separated"),
        None,
        "recipients of an email task whose payload is a plain string",
        "email.default_to",
        unset=(),
    ),
    Var("SMTP_TIMEOUT", duration(10), "30s", "timeout of each SMTP socket operation", "email.timeout_ms"),
    Var(
        "EGRESS_ALLOW_CIDRS",
        Parser(_cidrs("EGRESS_ALLOW_CIDRS"), "CIDRs, comma-separated"),
        None,
        "blocked ranges webhooks may reach anyway (e.g. `10.1.2.0/24`); `make run` sets "
        "`127.0.0.0/8` when unset, except with `ENV=production`",
        "security.egress_allow_cidrs",
        unset="",
    ),
    Var(
        "EGRESS_DENY_CIDRS",
        Parser(_cidrs("EGRESS_DENY_CIDRS"), "CIDRs, comma-separated"),
        None,
        "more ranges webhooks may not reach (wins over `EGRESS_ALLOW_CIDRS`)",
        "security.egress_deny_cidrs",
        unset="",
    ),
    Var(
        "EGRESS_ALLOW_PORTS",
        Parser(_ports, "ports and ranges: `80,443,8000-8099`"),
        None,
        "the only ports webhooks may reach; unset: any",
        "security.egress_allow_ports",
        unset="",
    ),
    Var(
        "WEBHOOK_SIGNING_SECRET",
        Parser(_signing_secrets, "`whsec_...`, space-separated"),
        None,
        "signs every webhook (Standard Webhooks `webhook-signature`); several (space-separated) sign "
        "with each, for rotation",
        "security.signing_secret",
        unset="",
    ),
    Var(
        "WEBHOOK_FOLLOW_REDIRECTS",
        Parser(_boolean, "`true`, `false`"),
        "false",
        "follow a webhook's redirects (up to 5, each hop checked by the egress guard); off: a 3xx fails",
        "security.follow_redirects",
    ),
)
_BY_NAME = {var.name: var for var in SPEC}


def _default(name: str) -> Any:
    """The typed default of a variable: what load_settings gives when it is unset."""
    return _BY_NAME[name].value(None)


# ---------------------------------------------------------------- what the rest of the code reads


@dataclass(frozen=True, slots=True)
class ApiSettings:
    host: str = _default("API_HOST")
    port: int = _default("API_PORT")
    max_body_bytes: int = _default("API_MAX_BODY_BYTES")
    graceful_timeout_s: int = _default("API_SHUTDOWN_TIMEOUT")
    # repr=False: keys end up nowhere near a log line.
    keys: str = field(default=_default("API_KEYS"), repr=False)
    read_keys: str = field(default=_default("API_READ_KEYS"), repr=False)
    keys_file: Path | None = _default("API_KEYS_FILE")  # noqa: RUF009 - None
    auth: str = _default("API_AUTH")  # "disabled": no key asked for, even in production
    rate_limit: Rate | None = _default("API_RATE_LIMIT")  # noqa: RUF009 - None or a frozen Rate; None: no limit
    auth_failures: Rate = _default("API_AUTH_FAILURES")  # noqa: RUF009 - a frozen Rate (count per period)
    auth_lockout_ms: int = _default("API_AUTH_LOCKOUT")
    trusted_proxies: tuple[IPNetwork, ...] = _default("API_TRUSTED_PROXIES")
    metrics_public: bool = _default("METRICS_PUBLIC")
    dev_inbox: bool = _default("DEV_INBOX")

    @property
    def local_url(self) -> str:
        """Where a client on this machine reaches the API: `0.0.0.0` (and `::`) listen on every
        interface, so 127.0.0.1 (`[::1]`) is dialled; any other host as it is."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)  # noqa: S104
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    processes: int = _default("WORKER_PROCESSES")
    threads: int = _default("WORKER_CONCURRENCY")
    prefetch: int = _default("WORKER_PREFETCH")  # 0 = dramatiq's default (2 x threads)
    retry_interval_ms: int = _default("WORKER_RETRY_INTERVAL")
    retry_max_age_ms: int = _default("WORKER_RETRY_MAX_AGE")
    request_timeout_ms: int = _default("WORKER_REQUEST_TIMEOUT")
    max_retries: int = _default("WORKER_MAX_RETRIES")
    backoff_min_ms: int = _default("WORKER_BACKOFF_MIN")
    backoff_max_ms: int = _default("WORKER_BACKOFF_MAX")
    min_retry_delay_ms: int = _default("TASK_MIN_RETRY_DELAY")  # the floor of a task's own policy
    lease_ms: int = _default("WORKER_LEASE")
    poll_interval_ms: int = _default("WORKER_POLL_INTERVAL")
    max_inflight: int = _default("WORKER_MAX_INFLIGHT")
    max_inflight_per_host: int = _default("WEBHOOK_MAX_INFLIGHT_PER_HOST")
    max_inflight_per_endpoint: int = _default("WEBHOOK_MAX_INFLIGHT_PER_ENDPOINT")
    breaker_threshold: int = _default("WEBHOOK_BREAKER_THRESHOLD")
    breaker_cooldown_ms: int = _default("WEBHOOK_BREAKER_COOLDOWN")
    breaker_max_cooldown_ms: int = _default("WEBHOOK_BREAKER_MAX_COOLDOWN")
    task_modules: tuple[str, ...] = _default("TASK_MODULES")
    health_port: int = _default("WORKER_HEALTH_PORT")
    metrics_port: int = _default("WORKER_METRICS_PORT")


DEFAULT_EMAIL_FROM: str = _default("EMAIL_FROM")


@dataclass(frozen=True, slots=True)
class EmailSettings:
    # repr=False: the URL may carry a password, and settings end up in logs.
    smtp_url: str | None = field(default=_default("SMTP_URL"), repr=False)  # None: `email` fails at once
    email_from: str = DEFAULT_EMAIL_FROM
    default_to: tuple[str, ...] = _default("EMAIL_DEFAULT_TO")  # where a plain-string payload goes
    timeout_ms: int = _default("SMTP_TIMEOUT")  # per SMTP socket operation

    @property
    def smtp(self) -> SmtpServer | None:
        return parse_smtp_url(self.smtp_url) if self.smtp_url else None


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """What webhooks may reach (the egress guard, `transports/egress.py`) and how they are signed."""

    egress_allow_cidrs: str = _default("EGRESS_ALLOW_CIDRS")
    egress_deny_cidrs: str = _default("EGRESS_DENY_CIDRS")
    egress_allow_ports: str = _default("EGRESS_ALLOW_PORTS")
    # repr=False: secrets end up nowhere near a log line.
    signing_secret: str = field(default=_default("WEBHOOK_SIGNING_SECRET"), repr=False)
    follow_redirects: bool = _default("WEBHOOK_FOLLOW_REDIRECTS")


@dataclass(frozen=True, slots=True)
class Settings:
    env: str = _default("ENV")
    log_level: str = _default("LOG_LEVEL")
    redis_url: str | None = None  # None: `make run` starts an embedded Redis under data_dir
    sentinels: tuple[tuple[str, int], ...] = ()  # set: the primary is the one these sentinels name
    sentinel_master: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)  # secret: never logged
    min_replicas: int = _default("REDIS_MIN_REPLICAS")  # replicas a submit waits for (WAIT)
    min_replicas_timeout_ms: int = _default("REDIS_MIN_REPLICAS_TIMEOUT")
    data_dir: Path = _default("DATA_DIR")  # noqa: RUF009 - a Path is immutable
    retention_ms: int = _default("TASK_RETENTION")
    max_timeout_ms: int = _default("TASK_MAX_TIMEOUT")  # the largest per-task `timeout` a client may ask for
    batch_max: int = _default("TASK_BATCH_MAX")  # most items of one batch submit
    api: ApiSettings = field(default_factory=ApiSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    email: EmailSettings = field(default_factory=EmailSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def redis(self) -> RedisTarget:
        """Where every Redis client connects (storage/connection.py builds them)."""
        return RedisTarget(self.redis_url or "", self.sentinels, self.sentinel_master, self.sentinel_password)


def load_settings(env: Mapping[str, str]) -> Settings:
    """Every variable of SPEC with a target, parsed, plus REDIS_URL from its parts."""
    groups: dict[str, dict[str, Any]] = {"": {}, "api": {}, "worker": {}, "email": {}, "security": {}}
    for var in SPEC:
        if var.target:
            group, _, name = var.target.rpartition(".")
            groups[group][name] = var.value(env.get(var.name))
    if groups[""]["sentinels"] and not groups[""]["sentinel_master"]:
        raise ConfigError("REDIS_SENTINEL_MASTER", "must be set with REDIS_SENTINELS (the service name)")
    if groups[""]["sentinel_master"] and not groups[""]["sentinels"]:
        raise ConfigError("REDIS_SENTINELS", "must be set with REDIS_SENTINEL_MASTER (host:port,...)")
    url = _redis_url_from(env)
    if groups[""]["sentinels"]:
        if url and url.startswith("unix://"):
            raise ConfigError("REDIS_URL", "unix:// cannot go with REDIS_SENTINELS (they name a host)")
        # The URL's host is ignored with sentinels: it carries only auth, db and TLS (or nothing).
        url = url or "redis://"
    settings = Settings(
        **groups[""],
        redis_url=url,
        api=ApiSettings(**groups["api"]),
        worker=WorkerSettings(**groups["worker"]),
        email=EmailSettings(**groups["email"]),
        security=SecuritySettings(**groups["security"]),
    )
    if settings.api.dev_inbox and settings.production:
        raise ConfigError("DEV_INBOX", "the development inbox is not served with ENV=production")
    return settings


def _redis_url_from(env: Mapping[str, str]) -> str | None:
    """REDIS_URL, or one built from REDIS_ADDR and its parts (read only when they are used)."""

    def read(name: str) -> Any:
        return _BY_NAME[name].value(env.get(name))

    url: str | None = read("REDIS_URL")
    if url:
        return url
    addr: str | None = read("REDIS_ADDR")
    if not addr:
        return None
    password: str | None = read("REDIS_PASSWORD")
    auth = f":{quote(password, safe='')}@" if password else ""
    url = f"redis://{auth}{addr}/{read('REDIS_DB')}"
    try:
        return redis_url(url)  # a port that is not a number: here, not a traceback in redis-py
    except ValueError as exc:
        raise ConfigError("REDIS_ADDR", str(exc)) from None


def api_url_from(env: Mapping[str, str]) -> tuple[str, str] | None:
    """The API's address for a client on this machine from the server's own settings, when
    API_HOST or API_PORT is set -> (url, why). Raises ConfigError naming a malformed variable."""
    given = [f"{name}={env[name]}" for name in ("API_HOST", "API_PORT") if env.get(name)]
    if not given:
        return None
    host, port = (_BY_NAME[name].value(env.get(name)) for name in ("API_HOST", "API_PORT"))
    return ApiSettings(host=host, port=port).local_url, f"from {' and '.join(given)}"


def data_dir_from(env: Mapping[str, str]) -> Path:
    """DATA_DIR (where `make run` keeps its state), or its default."""
    path: Path = _BY_NAME["DATA_DIR"].value(env.get("DATA_DIR"))
    return path


def markdown_table() -> str:
    """The README's Settings table, as SPEC says it (tests/test_settings.py compares the two)."""
    rows = ["| variable | default | allowed | meaning |", "|---|---|---|---|"]
    for var in SPEC:
        default = "unset" if var.default is None else f"`{var.default}`"
        rows.append(f"| `{var.name}` | {default} | {var.parser.allowed} | {var.help} |")
    return "\n".join(rows)
