"""`queue-system tasks retry|cancel|delete` with filters (a bulk operation, `--wait` showing its
progress) and `queue-system operations`, against a real API and worker (tests/e2e/support.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import redis
from click.testing import Result

from queue_system.cli.http import EXIT_CONFLICT, EXIT_OK
from tests.bulk_support import Seed, seed_tasks, status_of
from tests.e2e import support
from tests.support.cli import invoke


@pytest.fixture(scope="module")
def services(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[support.Stack]:
    with support.stack(redis_url, tmp_path_factory.mktemp("cli-bulk-logs")) as running:
        yield running


def cli(services: support.Stack, *args: str) -> Result:
    return invoke(*args, "--url", services.base_url)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_bulk_retry_since_waits_for_the_operation(services: support.Stack, redis_client: redis.Redis) -> None:
    now = now_ms()
    old = now - 3 * 3_600_000
    seeds = [Seed(f"new{i}", "failed", now - 60_000 + i, url=None, type="echo") for i in range(40)]
    seeds += [Seed("old", "failed", old, url=None, type="echo")]
    seed_tasks(redis_client, seeds)
    result = cli(services, "tasks", "retry", "--status", "failed", "--since", "2h", "--rate", "100", "--wait")
    assert result.exit_code == EXIT_OK, result.output
    assert "retry" in result.stdout and "done 40, skipped 0" in result.stdout and "100%" in result.stdout
    assert "running" in result.stderr  # the progress lines, while it ran
    assert status_of(redis_client, "old") == "failed"
    listed = cli(services, "operations", "--json")
    assert listed.exit_code == EXIT_OK, listed.output
    (op,) = json.loads(listed.stdout)["items"]
    assert op["state"] == "done" and op["filter"]["status"] == ["failed"]
    shown = cli(services, "operations", "show", op["id"])
    assert shown.exit_code == EXIT_OK and "done 40" in shown.stdout
    assert cli(services, "operations", "cancel", op["id"]).exit_code == EXIT_CONFLICT


def test_a_single_task_retry_still_takes_an_id(services: support.Stack, redis_client: redis.Redis) -> None:
    seed_tasks(redis_client, [Seed("one", "failed", now_ms() - 10, url=None, type="echo")])
    result = cli(services, "tasks", "retry", "one")
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout.strip() == "task one: pending"
    both = cli(services, "tasks", "retry", "one", "--status", "failed")
    assert both.exit_code == 2 and "not both" in both.output
    assert cli(services, "tasks", "cancel").exit_code == 2


def test_bulk_delete_asks_first_and_cancel_runs_without_waiting(
    services: support.Stack, redis_client: redis.Redis
) -> None:
    seed_tasks(redis_client, [Seed("p", "scheduled", now_ms() - 10, url=None, type="echo")])
    refused = invoke("tasks", "delete", "--all", "--url", services.base_url, input="n\n")
    assert refused.exit_code == 7 and status_of(redis_client, "p") == "scheduled"
    started = cli(services, "tasks", "cancel", "--queue", "default", "--json")
    assert started.exit_code == EXIT_OK, started.output
    assert json.loads(started.stdout)["state"] == "running"
    assert support.poll(lambda: status_of(redis_client, "p") == "cancelled", timeout=10)
