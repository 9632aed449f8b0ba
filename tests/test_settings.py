"""Unit tests of configuration parsing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from queue_system.config.settings import (
    SPEC,
    Settings,
    Var,
    load_settings,
    parse_duration_ms,
    parse_size_bytes,
)
from queue_system.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("500ms", 500),
        ("10s", 10_000),
        ("10", 10_000),
        ("1.5s", 1_500),
        ("5m", 300_000),
        ("24h", 86_400_000),
        ("7d", 604_800_000),
    ],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "ten", "10x", "-1s", "1 2s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration_ms(text)


def test_sizes() -> None:
    assert parse_size_bytes("1MiB") == 1_048_576
    assert parse_size_bytes("512kib") == 524_288
    assert parse_size_bytes("100") == 100


def test_defaults() -> None:
    s = load_settings({})
    assert s.env == "development"
    assert s.redis_url is None
    assert s.api.port == 8080
    assert s.api.max_body_bytes == 1_048_576
    assert s.worker.retry_interval_ms == 10_000
    assert s.worker.retry_max_age_ms == 86_400_000
    assert s.worker.request_timeout_ms == 30_000


def test_values_from_environment() -> None:
    s = load_settings(
        {
            "ENV": "production",
            "API_PORT": "9000",
            "WORKER_RETRY_INTERVAL": "1s",
            "WORKER_CONCURRENCY": "4",
            "REDIS_URL": "redis://h:6379/2",
            "LOG_LEVEL": "debug",
            "TASK_MODULES": "a.b, c",
        }
    )
    assert s.production
    assert s.api.port == 9000
    assert s.worker.retry_interval_ms == 1_000
    assert s.worker.threads == 4
    assert s.redis_url == "redis://h:6379/2"
    assert s.log_level == "DEBUG"
    assert s.worker.task_modules == ("a.b", "c")


def test_redis_addr_password_db() -> None:
    s = load_settings({"REDIS_ADDR": "cache:6380", "REDIS_PASSWORD": "p@ss", "REDIS_DB": "3"})
    assert s.redis_url == "redis://:p%40ss@cache:6380/3"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"API_PORT": "eighty"}, "API_PORT"),
        ({"API_PORT": "70000"}, "API_PORT"),
        ({"WORKER_RETRY_INTERVAL": "soon"}, "WORKER_RETRY_INTERVAL"),
        ({"WORKER_REQUEST_TIMEOUT": "0s"}, "WORKER_REQUEST_TIMEOUT"),
        ({"ENV": "staging"}, "ENV"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"API_MAX_BODY_BYTES": "big"}, "API_MAX_BODY_BYTES"),
        ({"REDIS_ADDR": "h:1", "REDIS_DB": "1024"}, "REDIS_DB"),
        ({"EMAIL_DEFAULT_TO": "a@x.org, nobody"}, "EMAIL_DEFAULT_TO"),
        ({"SMTP_URL": "http://mail"}, "SMTP_URL"),
        ({"WORKER_LEASE": "500ms"}, "WORKER_LEASE"),
    ],
)
def test_bad_value_names_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert info.value.variable == variable
    assert str(info.value).startswith(f"{variable}: ")


def test_defaults_come_from_the_spec() -> None:
    """The dataclasses' own defaults are the loader's defaults: one source, SPEC."""
    assert load_settings({}) == Settings()


# The docs' settings page is generated from SPEC at build time: tests/test_docs_site.py.


@pytest.mark.parametrize("var", SPEC, ids=lambda v: v.name)
def test_every_default_parses(var: Var) -> None:
    if var.default is not None:
        var.value(None)


def test_redis_parts_are_read_only_without_redis_url() -> None:
    assert load_settings({"REDIS_URL": "redis://h:1/0", "REDIS_DB": "many"}).redis_url == "redis://h:1/0"


@pytest.mark.parametrize("command", ["api", "worker"])
@pytest.mark.parametrize(
    "url",
    ["http://:s3cretpw@redis.example/0", "redis://:s3cretpw@redis.example:sixty/0", "redis://:s3cretpw@h/db"],
)
def test_a_bad_redis_url_is_a_configuration_error_that_keeps_its_password(command: str, url: str) -> None:
    # Found by hand: the message echoed the whole URL (password and all) to stderr and the logs,
    # and a port that is not a number got past the check to a traceback in redis-py.
    with pytest.raises(ConfigError) as info:
        load_settings({"REDIS_URL": url})
    assert info.value.variable == "REDIS_URL" and "s3cretpw" not in str(info.value)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "API_", "ENV"))}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve().parent.parent / "cmd" / f"{command}.py")],
        env={**env, "REDIS_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "configuration error: REDIS_URL" in done.stderr and "s3cretpw" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_a_redis_addr_with_a_bad_port_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"REDIS_ADDR": "redis.example:sixty", "REDIS_PASSWORD": "s3cretpw"})
    assert info.value.variable == "REDIS_ADDR" and "s3cretpw" not in str(info.value)
    assert (
        load_settings({"REDIS_ADDR": "h:6380", "REDIS_PASSWORD": "p w"}).redis_url
        == "redis://:p%20w@h:6380/0"
    )
