"""Fixtures for the end-to-end tests.

`services` starts the API and the worker once per module (short intervals, see support.BASE_ENV);
each test gets a flushed database (before it submits anything), a fresh `receiver`, and the `api`
client. When a test fails, the tails of the logs of the processes involved are added to its report.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.e2e import support
from tests.support.receiver import Receiver


@pytest.fixture(scope="session")
def e2e_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-logs")


@pytest.fixture(scope="module")
def services(redis_url: str, e2e_logs: Path) -> Iterator[support.Stack]:
    with support.stack(redis_url, e2e_logs) as running:
        yield running


@pytest.fixture(scope="module")
def api(services: support.Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=services.base_url, timeout=10) as client:
        yield client


@pytest.fixture(autouse=True)
def _fresh_redis(redis_client: redis.Redis) -> None:
    """Every e2e test starts on an empty database (the `redis_client` fixture flushes it).

    It runs after the module's processes started and before the test submits anything; leftovers
    of the previous test (a message in a worker's memory, an attempt in flight) find no task and
    are skipped."""


@pytest.fixture
def workers() -> Iterator[list[support.Proc]]:
    """Workers a test starts; any still running at the end are killed (the whole group)."""
    started: list[support.Proc] = []
    yield started
    for proc in started:
        if proc.running:
            proc.kill_group()
            proc.wait(10)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for proc in support.ALL:
            if proc.stopped_at is None or proc.stopped_at >= call.start:
                report.sections.append((f"{proc.name} log ({proc.log_path}), last lines", proc.tail()))
    return report
