"""`queue-system tasks submit --file`: a JSON Lines file through the batch endpoint of a real API
process (embedded Redis, no worker): one result line per line, the counts, and the exit code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import redis
from click.testing import CliRunner, Result

from queue_system.cli.client import COMMANDS
from queue_system.cli.http import EXIT_API_ERROR, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE
from queue_system.storage.keys import Keys
from tests.e2e import support

pytestmark = pytest.mark.e2e

MAIN = click.Group("queue-system", commands=COMMANDS)


@pytest.fixture(scope="module")
def api_url(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with support.api_alone(redis_url, tmp_path_factory.mktemp("cli-batch"), "api-batch") as client:
        yield str(client.base_url).rstrip("/")


def run(api_url: str, *args: str, input: str | None = None) -> Result:
    runner = CliRunner(env={"QUEUE_SYSTEM_URL": None, "QUEUE_SYSTEM_API_KEY": None})
    return runner.invoke(
        MAIN, ["tasks", "submit", *args, "--url", api_url], input=input, catch_exceptions=False
    )


def lines(*bodies: object) -> str:
    return "\n".join(b if isinstance(b, str) else json.dumps(b) for b in bodies) + "\n"


def test_a_good_file_goes_in_batches_and_exits_0(
    api_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text(lines(*({"type": "echo", "payload": str(i), "id": f"f-{i}"} for i in range(7)), ""))
    result = run(api_url, "--file", str(path), "--batch-size", "3")
    assert result.exit_code == EXIT_OK, result.output
    rows = result.stdout.splitlines()
    assert [row.split() for row in rows] == [[str(i + 1), "201", "created", f"f-{i}"] for i in range(7)]
    assert "7 created, 0 already there, 0 failed" in result.stderr
    assert redis_client.zcard(Keys().index()) == 7
    again = run(api_url, "--file", str(path), "--json")  # the same ids again: all there already
    assert again.exit_code == EXIT_OK, again.output
    document = json.loads(again.stdout)
    assert (document["created"], document["existing"], document["failed"]) == (0, 7, 0)
    assert [item["line"] for item in document["items"]] == list(range(1, 8))


def test_bad_lines_are_reported_by_line_and_exit_1(api_url: str, redis_client: redis.Redis) -> None:
    text = lines(
        {"type": "echo", "payload": "ok"},
        "{not json",
        {"url": "ftp://example.test/"},
        {"type": "echo", "payload": "ok too"},
    )
    result = run(api_url, "--file", "-", input=text)
    assert result.exit_code == EXIT_API_ERROR, result.output
    rows = result.stdout.splitlines()
    assert rows[0].split()[:3] == ["1", "201", "created"]
    assert rows[1].split()[:3] == ["2", "-", "failed"] and "not JSON" in rows[1]
    assert rows[2].split()[:3] == ["3", "422", "failed"] and "url: must be" in rows[2]
    assert rows[3].split()[:3] == ["4", "201", "created"]
    assert "2 created, 0 already there, 2 failed" in result.stderr
    assert redis_client.zcard(Keys().index()) == 2


def test_file_excludes_the_other_task_options(api_url: str) -> None:
    result = run(api_url, "--file", "-", "--type", "echo", input=lines({"type": "echo"}))
    assert result.exit_code == EXIT_USAGE


def test_an_unreachable_api_says_which_lines_to_resend() -> None:
    result = run("http://127.0.0.1:9", "--file", "-", input=lines({"type": "echo", "payload": "1"}))
    assert result.exit_code == EXIT_UNREACHABLE
    assert "lines from 1 on were not confirmed" in result.output
