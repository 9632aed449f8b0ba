"""The API's settings (`Settings.api`), each declared once as its field (declare.py says how)."""

# ruff: noqa: RUF009 - `setting()` is a dataclasses.field() with the declaration as its metadata

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from queue_system.config.declare import setting
from queue_system.config.delegated import key_list, keys_file, networks, rate
from queue_system.config.parsing import choice, duration, flag, integer, size, text
from queue_system.storage.rate_limit import Rate
from queue_system.transports.egress_ranges import IPNetwork


@dataclass(frozen=True, slots=True)
class ApiSettings:
    # A service listens on all interfaces; set API_HOST to narrow.
    host: str = setting("API_HOST", text("an address"), "0.0.0.0", "the API's listen address")  # noqa: S104
    port: int = setting("API_PORT", integer(1, 65535), "8080", "the API's port")
    max_body_bytes: int = setting(
        "API_MAX_BODY_BYTES", size(), "1MiB", "largest accepted request body (`413` beyond)"
    )
    graceful_timeout_s: int = setting(
        "API_SHUTDOWN_TIMEOUT",
        duration(unit_ms=1000),
        "30s",
        "on SIGTERM, how long in-flight requests may take to finish",
    )
    keys: str = setting(
        "API_KEYS",
        key_list(),
        None,
        "keys that may do everything (`Authorization: Bearer <key>` or `X-API-Key`); an entry "
        "`sha256:<hex>` is a key's digest. Unset with `ENV=production`: the API refuses to start",
        unset="",
        secret=True,
    )
    read_keys: str = setting(
        "API_READ_KEYS",
        key_list(),
        None,
        "keys that may only read (`GET`); a change is `403`",
        unset="",
        secret=True,
    )
    keys_file: Path | None = setting(
        "API_KEYS_FILE", keys_file(), None, "a file of keys like `API_KEYS`, one per line (`#` comments)"
    )
    auth: str = setting(  # "disabled": no key asked for, even in production
        "API_AUTH",
        choice("enabled", "disabled"),
        "enabled",
        "`disabled`: no key is asked for, even in production (behind a gateway that checks them)",
    )
    rate_limit: Rate | None = setting(
        "API_RATE_LIMIT",
        rate("`100/s`, `6000/min`, `10/5s`"),
        None,
        "requests per key (per client address without keys), strict across API processes; `429` "
        "beyond, with `Retry-After`. Unset: no limit",
    )
    auth_failures: Rate = setting(
        "API_AUTH_FAILURES",
        rate("`10/min`, `5/10s`"),
        "10/min",
        "wrong API keys (API or dashboard sign-in) one client address may present in that time; then it "
        "is locked out (`429` with `Retry-After`, even for a valid key) for `API_AUTH_LOCKOUT`",
    )
    auth_lockout_ms: int = setting(
        "API_AUTH_LOCKOUT",
        duration(1_000),
        "1m",
        "the first lockout; each further one doubles, up to 1 h (forgotten a day after the last)",
    )
    trusted_proxies: tuple[IPNetwork, ...] = setting(
        "API_TRUSTED_PROXIES",
        networks(),
        None,
        "proxies whose `X-Forwarded-For` names the client (for the lockout and the rate limit); "
        "unset: the peer address is the client",
        unset=(),
    )
    metrics_public: bool = setting(
        "METRICS_PUBLIC",
        flag(),
        "false",
        "`true`: the API's and the worker's `GET /metrics` answer without a key; `false`: any API key "
        "(read-only too) when keys are configured",
    )
    dev_inbox: bool = setting(
        "DEV_INBOX",
        flag(),
        "false",
        "`true`: the API serves the development inbox, a webhook receiver of its own (`/dev/inbox/{name}`; "
        "dashboard Inbox, `queue-system inbox`). `make run` turns it on in development unless set; "
        "refused with `ENV=production`",
    )

    @property
    def local_url(self) -> str:
        """Where a client on this machine reaches the API: `0.0.0.0` (and `::`) listen on every
        interface, so 127.0.0.1 (`[::1]`) is dialled; any other host as it is."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)  # noqa: S104
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"
