"""`queue-system schedules ...` against a real API process on a real Redis, invoked in process with
click's CliRunner: what a user types, what they see, and the exit codes. Firings are the
reconciler's own step (`fire_due`) run here on the same Redis, so no worker has to wait for a tick."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
import redis
from click.testing import CliRunner, Result

from queue_system.cli import schedules as cli_schedules
from queue_system.cli.http import (
    EXIT_ABORTED,
    EXIT_API_ERROR,
    EXIT_CONFLICT,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)
from queue_system.service.schedules import fire_due
from queue_system.storage.keys import Keys
from queue_system.storage.schedules import ScheduleStore
from tests.e2e import support

pytestmark = pytest.mark.e2e

Cli = Callable[..., Result]
MAIN = click.Group("queue-system", commands=cli_schedules.COMMANDS)  # as `queue_system.cli.main` adds it
ECHO = '{"type": "echo", "payload": "tick"}'


@pytest.fixture(scope="module")
def base_url(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with support.api_alone(redis_url, tmp_path_factory.mktemp("cli-sched-logs"), "api-cli-sched") as client:
        yield str(client.base_url).rstrip("/")


@pytest.fixture
def cli(base_url: str, redis_client: redis.Redis) -> Cli:
    """Runs `queue-system ARGS --url <the test API>` on a flushed Redis."""

    def run(*args: str, input: str | None = None) -> Result:
        env: dict[str, str | None] = {"QUEUE_SYSTEM_URL": None, "QUEUE_SYSTEM_API_KEY": None}
        runner = CliRunner(env=env)
        return runner.invoke(MAIN, [*args, "--url", base_url], input=input, catch_exceptions=False)

    return run


def ok(result: Result) -> str:
    assert result.exit_code == EXIT_OK, result.output
    return result.stdout


def test_create_list_show_with_last_tasks(cli: Cli, redis_client: redis.Redis) -> None:
    out = ok(cli("schedules", "create", "--every", "1m", "--task", ECHO, "--id", "ping"))
    assert out.startswith("created schedule ping (every 1m), next run ")
    again = ok(cli("schedules", "create", "--every", "60s", "--task", ECHO, "--id", "ping"))
    assert again.startswith("already exists with this task and timing: schedule ping")
    clash = cli("schedules", "create", "--every", "2m", "--task", ECHO, "--id", "ping")
    assert clash.exit_code == EXIT_CONFLICT and "exists with another task or timing" in clash.stderr
    ok(cli("schedules", "create", "--cron", "30 2 * * *", "--timezone", "Europe/Berlin", "--task", ECHO))

    lines = ok(cli("schedules")).splitlines()
    assert " ".join(lines[0].split()) == "ID TIMING TIMEZONE PAUSED NEXT RUN (UTC) LAST RUN (UTC)"
    assert lines[1].split()[:4] == ["ping", "every", "1m", "-"] and lines[1].split()[4] == "no"
    assert "cron 30 2 * * *" in lines[2] and "Europe/Berlin" in lines[2]
    assert ok(cli("schedules", "list")) == "\n".join(lines) + "\n"

    store = ScheduleStore(redis_client, Keys())
    rec = store.read("ping")
    assert rec is not None
    assert fire_due(store, rec.next_run_at + 100) == 1  # what a worker's reconciler does at the tick
    shown = ok(cli("schedules", "show", "ping"))
    assert "timing:          every 1m" in shown and "catch up:        latest" in shown
    assert "last tasks (1 task, newest first):" in shown
    assert f"ping@{rec.next_run_at}  echo  pending" in shown
    data = json.loads(ok(cli("schedules", "show", "ping", "--json")))
    assert data["last_tasks"] == [f"ping@{rec.next_run_at}"] and data["task"] == json.loads(ECHO)


def test_pause_resume_delete(cli: Cli) -> None:
    ok(cli("schedules", "create", "--every", "5m", "--task", ECHO, "--id", "nightly"))
    assert ok(cli("schedules", "pause", "nightly")) == "schedule nightly: paused (no task until resumed)\n"
    paused = json.loads(ok(cli("schedules", "--json")))["items"][0]
    assert paused["paused"] is True and paused["next_run_at"] is None
    assert ok(cli("schedules", "resume", "nightly")).startswith("schedule nightly: resumed, next run 20")
    refused = cli("schedules", "delete", "nightly", input="n\n")
    assert refused.exit_code == EXIT_ABORTED
    assert ok(cli("schedules", "delete", "nightly", "--yes")) == "deleted schedule nightly\n"
    assert ok(cli("schedules")) == "no schedules\n"


@pytest.mark.parametrize("verb", ["show", "pause", "resume"])
def test_unknown_schedule_is_exit_3(cli: Cli, verb: str) -> None:
    result = cli("schedules", verb, "nope")
    assert result.exit_code == EXIT_NOT_FOUND and "no schedule with id 'nope'" in result.stderr


def test_task_from_a_file_and_problems_named(cli: Cli, tmp_path: Path) -> None:
    task = tmp_path / "task.json"
    task.write_text(ECHO)
    assert ok(cli("schedules", "create", "--every", "30s", "--file", str(task))).startswith("created")
    bad = cli("schedules", "create", "--cron", "61 * * * *", "--task", ECHO)
    assert bad.exit_code == EXIT_API_ERROR
    assert "422 Unprocessable Entity: cron: not a cron expression" in bad.stderr
    bad_task = cli("schedules", "create", "--every", "1s", "--task", '{"type": "nope"}')
    assert bad_task.exit_code == EXIT_API_ERROR and "task.type" in bad_task.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("schedules", "create", "--task", ECHO),  # no timing
        ("schedules", "create", "--every", "1m", "--cron", "* * * * *", "--task", ECHO),
        ("schedules", "create", "--every", "1m"),  # no task
        ("schedules", "create", "--every", "1m", "--task", "{not json"),
    ],
)
def test_usage_errors_are_exit_2(cli: Cli, args: tuple[str, ...]) -> None:
    assert cli(*args).exit_code == EXIT_USAGE


def test_group_options_before_a_subcommand_are_refused() -> None:
    result = CliRunner().invoke(MAIN, ["schedules", "--json", "show", "x"])
    assert result.exit_code == EXIT_USAGE and "put --json after the subcommand" in result.output


def test_unreachable_server_is_exit_6() -> None:
    result = CliRunner().invoke(MAIN, ["schedules", "--url", "http://127.0.0.1:9"])  # nothing listens there
    assert result.exit_code == EXIT_UNREACHABLE and "cannot reach the server" in result.output


def test_overlap_skip_shown_and_skipped_ticks_counted(cli: Cli, redis_client: redis.Redis) -> None:
    ok(cli("schedules", "create", "--every", "1m", "--overlap", "skip", "--task", ECHO, "--id", "slowjob"))
    store = ScheduleStore(redis_client, Keys())
    rec = store.read("slowjob")
    assert rec is not None
    assert fire_due(store, rec.next_run_at + 100) == 1
    assert fire_due(store, rec.next_run_at + 60_100) == 0  # the first task still pending: skipped
    shown = ok(cli("schedules", "show", "slowjob"))
    assert "overlap:         skip" in shown and "skipped ticks:   1" in shown
    bad = cli("schedules", "create", "--every", "1m", "--overlap", "replace", "--task", ECHO)
    assert bad.exit_code == EXIT_USAGE


def test_a_create_past_schedules_max_names_the_limit(
    redis_client: redis.Redis, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    logs = tmp_path_factory.mktemp("cli-sched-max-logs")
    proc, url = support.start_api(redis_url, logs, "api-sched-max", SCHEDULES_MAX="1")
    try:
        runner = CliRunner(env={"QUEUE_SYSTEM_URL": None, "QUEUE_SYSTEM_API_KEY": None})
        argv = ["schedules", "create", "--every", "1m", "--task", ECHO, "--url", url]
        assert runner.invoke(MAIN, argv, catch_exceptions=False).exit_code == EXIT_OK
        full = runner.invoke(MAIN, argv, catch_exceptions=False)
        assert full.exit_code == EXIT_CONFLICT
        assert "limit reached: SCHEDULES_MAX is 1; delete a schedule first" in full.stderr
    finally:
        proc.stop()
