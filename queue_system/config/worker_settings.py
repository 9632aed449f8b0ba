"""The worker's settings (`Settings.worker`), and what its kinds send with (`Settings.email`,
`Settings.security`), each declared once as its field (declare.py says how)."""

from __future__ import annotations

from dataclasses import dataclass

from queue_system.config.declare import setting
from queue_system.config.delegated import cidr_text, ports, signing_secrets
from queue_system.config.parsing import (
    Parser,
    SmtpServer,
    duration,
    email_address,
    email_addresses,
    flag,
    integer,
    module_names,
    parse_smtp_url,
    smtp_url,
)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    processes: int = setting("WORKER_PROCESSES", integer(1, 256), "2", "worker processes")
    threads: int = setting("WORKER_CONCURRENCY", integer(1, 1024), "8", "threads per worker process")
    prefetch: int = setting(  # 0 = dramatiq's default (2 x threads)
        "WORKER_PREFETCH",
        integer(0, 10_000),
        "0",
        "messages each process holds ahead (`0`: Dramatiq's default, 2 x threads)",
    )
    request_timeout_ms: int = setting(
        "WORKER_REQUEST_TIMEOUT", duration(10), "30s", "webhook request timeout"
    )
    retry_interval_ms: int = setting("WORKER_RETRY_INTERVAL", duration(10), "10s", "webhook retry interval")
    retry_max_age_ms: int = setting(
        "WORKER_RETRY_MAX_AGE", duration(), "24h", "webhooks stop retrying this long after creation"
    )
    max_retries: int = setting(
        "WORKER_MAX_RETRIES", integer(0, 100), "3", "retries for the backoff kinds (every kind but webhook)"
    )
    backoff_min_ms: int = setting(
        "WORKER_BACKOFF_MIN", duration(), "1s", "exponential backoff: the first retry's bound (full jitter)"
    )
    backoff_max_ms: int = setting(
        "WORKER_BACKOFF_MAX", duration(), "1h", "exponential backoff: the longest wait"
    )
    lease_ms: int = setting(
        "WORKER_LEASE",
        duration(1_000),
        "15s",
        "a running task's lease, renewed every third of it; a task whose worker died is recovered within "
        "about this long",
    )
    poll_interval_ms: int = setting(
        "WORKER_POLL_INTERVAL",
        duration(10),
        "100ms",
        "how often each worker process dispatches due retries and checks leases (a retry starts at most "
        "about this much late)",
    )
    max_inflight: int = setting(
        "WORKER_MAX_INFLIGHT",
        integer(1, 10_000),
        "256",
        "webhook deliveries in flight per worker process (sent on its event loop, not on a thread; a "
        "thread waits for room beyond this)",
    )
    health_port: int = setting(
        "WORKER_HEALTH_PORT",
        integer(0, 65535),
        "8082",
        "the worker's `GET /health` (`200` connected and consuming, `503` with the reason); `0`: not served",
    )
    metrics_port: int = setting(
        "WORKER_METRICS_PORT",
        integer(0, 65535),
        "9191",
        "the worker's Prometheus `GET /metrics`, summed across its processes; `0`: not served",
    )
    max_inflight_per_host: int = setting(
        "WEBHOOK_MAX_INFLIGHT_PER_HOST",
        integer(1, 100_000),
        "256",
        "webhook requests in flight to one host (scheme, host, port), across all workers; more wait, parked",
    )
    max_inflight_per_endpoint: int = setting(
        "WEBHOOK_MAX_INFLIGHT_PER_ENDPOINT",
        integer(1, 100_000),
        "64",
        "webhook requests in flight to one endpoint (the URL without its query, or its `endpoint` key), "
        "across all workers, within its host's cap (never more than WEBHOOK_MAX_INFLIGHT_PER_HOST); "
        "more wait, parked",
    )
    breaker_threshold: int = setting(
        "WEBHOOK_BREAKER_THRESHOLD",
        integer(1, 10_000),
        "5",
        "failures in a row that open a circuit breaker: an endpoint's (5xx, response timeouts) or a "
        "host's (DNS, refused, connect timeout, TLS)",
    )
    breaker_cooldown_ms: int = setting(
        "WEBHOOK_BREAKER_COOLDOWN",
        duration(100),
        "5s",
        "how long an open destination waits before one probe; doubles after each failed probe",
    )
    breaker_max_cooldown_ms: int = setting(
        "WEBHOOK_BREAKER_MAX_COOLDOWN", duration(100), "5m", "the longest cool-down"
    )
    task_modules: tuple[str, ...] = setting(
        "TASK_MODULES",
        Parser(module_names, "module names, comma-separated"),
        None,
        "modules with your own task kinds, imported by the API and the worker",
        unset=(),
    )
    min_retry_delay_ms: int = setting(  # the floor of a task's own policy
        "TASK_MIN_RETRY_DELAY",
        duration(10),
        "1s",
        "the shortest `retry.interval` / `retry.min_delay` a task may ask for (shorter: 422)",
    )


@dataclass(frozen=True, slots=True)
class EmailSettings:
    smtp_url: str | None = setting(  # None: `email` fails at once
        "SMTP_URL",
        Parser(smtp_url, "`smtp://`, `smtps://`"),
        None,
        "`smtp://[user:pass@]host[:port][?starttls=true]` or `smtps://...`; unset: email tasks fail at once",
        secret=True,  # the URL may carry a password
    )
    email_from: str = setting(
        "EMAIL_FROM",
        Parser(email_address, "an address"),
        "queue_system@localhost",
        "the sender of email tasks",
    )
    default_to: tuple[str, ...] = setting(  # where a plain-string payload goes
        "EMAIL_DEFAULT_TO",
        Parser(email_addresses, "addresses, comma-separated"),
        None,
        "recipients of an email task whose payload is a plain string",
        unset=(),
    )
    timeout_ms: int = setting("SMTP_TIMEOUT", duration(10), "30s", "timeout of each SMTP socket operation")

    @property
    def smtp(self) -> SmtpServer | None:
        return parse_smtp_url(self.smtp_url) if self.smtp_url else None


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """What webhooks may reach (the egress guard, `transports/egress.py`) and how they are signed."""

    egress_allow_cidrs: str = setting(
        "EGRESS_ALLOW_CIDRS",
        cidr_text(),
        None,
        "blocked ranges webhooks may reach anyway (e.g. `10.1.2.0/24`); `make run` sets "
        "`127.0.0.0/8` when unset, except with `ENV=production`",
        unset="",
    )
    egress_deny_cidrs: str = setting(
        "EGRESS_DENY_CIDRS",
        cidr_text(),
        None,
        "more ranges webhooks may not reach (wins over `EGRESS_ALLOW_CIDRS`)",
        unset="",
    )
    egress_allow_ports: str = setting(
        "EGRESS_ALLOW_PORTS", ports(), None, "the only ports webhooks may reach; unset: any", unset=""
    )
    signing_secret: str = setting(
        "WEBHOOK_SIGNING_SECRET",
        signing_secrets(),
        None,
        "signs every webhook (Standard Webhooks `webhook-signature`); several (space-separated) sign "
        "with each, for rotation",
        unset="",
        secret=True,
    )
    follow_redirects: bool = setting(
        "WEBHOOK_FOLLOW_REDIRECTS",
        flag(),
        "false",
        "follow a webhook's redirects (up to 5, each hop checked by the egress guard); off: a 3xx fails",
    )
