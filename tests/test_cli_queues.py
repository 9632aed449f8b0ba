"""`queue-system queues` against a real API process (embedded Redis): the table, pause and resume
(idempotent), --json, and an unknown queue as exit 3 naming the queues there are."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from click.testing import CliRunner, Result

from queue_system.cli.http import EXIT_NOT_FOUND, EXIT_OK
from queue_system.cli.main import main
from tests.e2e import support

pytestmark = pytest.mark.e2e
Cli = Callable[..., Result]


@pytest.fixture(scope="module")
def base_url(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with support.api_only(redis_url, tmp_path_factory.mktemp("cli-queues-logs"), "api-cli-q") as url:
        yield url


@pytest.fixture
def cli(base_url: str, redis_client: object) -> Iterator[Cli]:
    def run(*args: str) -> Result:
        runner = CliRunner(env={"QUEUE_SYSTEM_URL": None, "QUEUE_SYSTEM_API_KEY": None})
        return runner.invoke(main, [*args, "--url", base_url], catch_exceptions=False)

    yield run


def ok(result: Result) -> str:
    assert result.exit_code == EXIT_OK, result.output
    return result.stdout


def test_list_pause_resume(cli: Cli, base_url: str) -> None:
    run = cli
    table = ok(run("queues"))
    assert "QUEUE" in table and "default" in table and "priority" in table and "running" in table
    assert ok(run("queues", "pause", "default")).strip() == "queue default: paused (depth 0, held 0)"
    assert "paused" in ok(run("queues", "pause", "default"))
    with httpx.Client(base_url=base_url) as api:
        support.submit(api, {"type": "echo", "payload": "waits"})
    data = json.loads(ok(run("queues", "--json")))
    default = next(q for q in data["items"] if q["name"] == "default")
    assert default["paused"] is True and default["depth"] == 1
    assert "paused" in ok(run("queues"))
    resumed = json.loads(ok(run("queues", "resume", "default", "--json")))
    assert resumed["paused"] is False and resumed["released"] == 0  # no worker fetched it: not held
    assert "running" in ok(run("queues", "resume", "default"))


def test_unknown_queue_is_exit_3_naming_the_queues(cli: Cli) -> None:
    result = cli("queues", "pause", "no-such")
    assert result.exit_code == EXIT_NOT_FOUND
    assert "no queue named 'no-such'" in result.stderr and "default, priority" in result.stderr
