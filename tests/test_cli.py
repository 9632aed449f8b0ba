"""The `queue-system` client commands against a real API and worker (embedded Redis, real processes),
invoked in process with click's CliRunner: what a user types, what they see, and the exit codes.

A real HTTP receiver on 127.0.0.1 stands in for an API that demands a key (401/403) or answers with
something that is not a problem body (502), since today's API has neither."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import Result

from queue_system.cli.http import (
    EXIT_ABORTED,
    EXIT_API_ERROR,
    EXIT_CONFLICT,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNAUTHORIZED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)
from tests.e2e import support
from tests.support.cli import invoke
from tests.support.receiver import Receiver, Reply

pytestmark = pytest.mark.e2e

Cli = Callable[..., Result]
FAIL_AT_ONCE = ["--type", "math", "--payload", '{"a": 1, "b": 0, "op": "div"}']  # a permanent failure


@pytest.fixture(scope="module")
def services(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[support.Stack]:
    with support.stack(redis_url, tmp_path_factory.mktemp("cli-logs")) as running:
        yield running


@pytest.fixture
def api(services: support.Stack, redis_client: object) -> Iterator[httpx.Client]:
    """A plain HTTP client to check what the CLI did; `redis_client` flushes the database first."""
    with httpx.Client(base_url=services.base_url, timeout=10) as client:
        yield client


@pytest.fixture
def cli(services: support.Stack, api: httpx.Client) -> Cli:
    """Runs `queue-system ARGS --url <the test API>`."""

    def run(*args: str, input: str | None = None) -> Result:
        return invoke(*args, "--url", services.base_url, input=input)

    return run


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


def ok(result: Result) -> str:
    assert result.exit_code == EXIT_OK, result.output
    return result.stdout


def submitted(cli: Cli, *args: str) -> str:
    task = json.loads(ok(cli("tasks", "submit", *args, "--json")))
    return str(task["id"])


def test_submit_show_and_json(cli: Cli, api: httpx.Client) -> None:
    out = ok(cli("tasks", "submit", "--type", "sum", "--payload", "[1, 2, 5]", "--id", "sum-1"))
    assert out.strip() == "submitted task sum-1 (sum, pending)"
    support.wait_for_status(api, "sum-1", "completed")

    shown = ok(cli("tasks", "show", "sum-1"))
    assert "status:" in shown and "completed" in shown and '"8.00"' not in shown and "8.00" in shown
    timeline = shown.split("attempts (1 kept):\n", 1)[1].splitlines()
    assert timeline[0].split() == [
        "#",
        "STARTED",
        "(UTC)",
        "TRIGGER",
        "OUTCOME",
        "CODE",
        "DURATION",
        "ERROR",
        "/",
        "RESPONSE",
    ]
    assert timeline[1].split()[0] == "1" and "auto" in timeline[1] and "success" in timeline[1]

    task = json.loads(ok(cli("tasks", "show", "sum-1", "--json")))
    assert task["result"] == "8.00" and [a["outcome"] for a in task["attempt_history"]] == ["success"]

    again = ok(cli("tasks", "submit", "--type", "sum", "--payload", "[1, 2, 5]", "--id", "sum-1"))
    assert again.startswith("already exists with this body: task sum-1")
    clash = cli("tasks", "submit", "--type", "sum", "--payload", "[9]", "--id", "sum-1")
    assert clash.exit_code == EXIT_CONFLICT
    assert "409 Conflict" in clash.stderr and "existing task: /api/v1/tasks/sum-1" in clash.stderr


def test_webhook_submit_fails_then_retry_succeeds(cli: Cli, api: httpx.Client, receiver: Receiver) -> None:
    receiver.program(default=404)  # a permanent failure
    task_id = submitted(
        cli, "--webhook", receiver.url("/hook"), "--method", "put", "--header", "X-Custom: test",
        "--body", '{"a": 1}', "--queue", "priority",
    )  # fmt: skip
    support.wait_for_status(api, task_id, "failed")
    first = receiver.requests[0]
    assert (first.method, first.path, first.body) == ("PUT", "/hook", b'{"a": 1}')
    assert first.headers["x-custom"] == "test"

    receiver.program(default=200)
    assert ok(cli("tasks", "retry", task_id)).split(": ")[0] == f"task {task_id}"
    support.wait_for_status(api, task_id, "completed")
    rows = ok(cli("tasks", "show", task_id)).split("attempts (2 kept):\n", 1)[1].splitlines()
    assert [rows[1].split()[i] for i in (0, 3, 4, 5)] == ["1", "auto", "permanent", "404"]
    assert [rows[2].split()[i] for i in (0, 3, 4, 5)] == ["2", "manual", "success", "200"]

    finished = cli("tasks", "retry", task_id)
    assert finished.exit_code == EXIT_CONFLICT and "409" in finished.stderr


def test_list_filters_and_pages(cli: Cli, api: httpx.Client) -> None:
    echoes = [submitted(cli, "--type", "echo", "--payload", f'"hi {n}"') for n in range(5)]
    failing = submitted(cli, *FAIL_AT_ONCE)
    support.wait_for_status(api, failing, "failed")

    only_failed = json.loads(ok(cli("tasks", "list", "--status", "failed", "--json")))
    assert [t["id"] for t in only_failed["items"]] == [failing] and only_failed["next_cursor"] is None
    by_type = json.loads(ok(cli("tasks", "list", "--type", "echo", "--json")))
    assert sorted(t["id"] for t in by_type["items"]) == sorted(echoes)

    page = json.loads(ok(cli("tasks", "list", "--limit", "2", "--json")))
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = json.loads(
        ok(cli("tasks", "list", "--limit", "2", "--cursor", page["next_cursor"], "--all", "--json"))
    )
    everything = json.loads(ok(cli("tasks", "list", "--limit", "2", "--all", "--json")))
    assert everything["next_cursor"] is None and rest["next_cursor"] is None
    ids = [t["id"] for t in everything["items"]]
    assert sorted(ids) == sorted([*echoes, failing]) and ids == [
        t["id"] for t in page["items"] + rest["items"]
    ]

    assert json.loads(ok(cli("tasks", "list", "--all", "--json")))["items"] == everything["items"]

    human = cli("tasks", "list", "--limit", "2")
    lines = ok(human).splitlines()
    assert lines[0].split()[:5] == ["ID", "TYPE", "STATUS", "QUEUE", "ATTEMPTS"] and len(lines) == 3
    assert f"--cursor {page['next_cursor']}" in human.stderr


def test_cancel_and_cancel_again(cli: Cli, api: httpx.Client) -> None:
    task_id = submitted(cli, "--type", "echo", "--payload", '"later"', "--delay", "60s")
    assert support.get_task(api, task_id)["status"] == "scheduled"
    assert ok(cli("tasks", "cancel", task_id)).strip() == f"task {task_id}: cancelled"
    again = cli("tasks", "cancel", task_id)
    assert again.exit_code == EXIT_CONFLICT and "409 Conflict" in again.stderr


def test_delete_asks_first(cli: Cli, api: httpx.Client) -> None:
    task_id = submitted(cli, "--type", "echo", "--payload", '"x"', "--delay", "60s")
    for answer in ("n\n", ""):  # "no", and no answer at all (stdin closed, as in a script)
        refused = cli("tasks", "delete", task_id, input=answer)
        assert refused.exit_code == EXIT_ABORTED and "nothing was deleted" in refused.stderr
        assert api.get(f"/api/v1/tasks/{task_id}").status_code == 200
    assert ok(cli("tasks", "delete", task_id, input="y\n")).strip() == f"deleted task {task_id}"
    assert api.get(f"/api/v1/tasks/{task_id}").status_code == 404

    other = submitted(cli, "--type", "echo", "--payload", '"y"')
    assert json.loads(ok(cli("tasks", "delete", other, "--yes", "--json"))) == {"id": other, "deleted": True}


@pytest.mark.parametrize(
    "args", [("tasks", "show"), ("tasks", "retry"), ("tasks", "cancel"), ("tasks", "delete", "--yes")]
)
def test_unknown_task_is_exit_3(cli: Cli, args: tuple[str, ...]) -> None:
    result = cli(*args, "no-such-task")
    assert result.exit_code == EXIT_NOT_FOUND
    assert result.stderr.strip() == "Error: 404 Not Found: no task with id 'no-such-task'"


def test_stats(cli: Cli, api: httpx.Client) -> None:
    support.wait_for_status(api, submitted(cli, "--type", "echo", "--payload", '"s"'), "completed")
    human = ok(cli("stats"))
    assert "STATUS" in human and "QUEUE" in human and "oldest pending: none" in human
    data = json.loads(ok(cli("stats", "--json")))
    assert data["by_status"]["completed"] == 1 and data["by_type"] == {"echo": 1}


def test_workers(cli: Cli) -> None:
    data = json.loads(ok(cli("workers", "--json")))
    assert data["alive"] >= 1  # the module's worker process beats once a second
    assert all({"id", "last_heartbeat_at", "alive"} <= set(w) for w in data["items"])
    assert "LAST_HEARTBEAT_AT" in ok(cli("workers"))


def test_destinations(cli: Cli) -> None:
    data = json.loads(ok(cli("destinations", "--json")))
    assert data == {
        "known": 0,
        "open": 0,
        "parked": 0,
        "items": [],
        "endpoints_known": 0,
        "endpoints_open": 0,
        "endpoints": [],
    }
    assert "0 endpoints known, 0 open" in ok(cli("destinations"))


def test_purge_asks_then_deletes_only_what_matches(cli: Cli, api: httpx.Client) -> None:
    failed = [submitted(cli, *FAIL_AT_ONCE) for _ in range(3)]
    kept = submitted(cli, "--type", "echo", "--payload", '"keep me"')
    for task_id in failed:
        support.wait_for_status(api, task_id, "failed")
    support.wait_for_status(api, kept, "completed")

    none_old_enough = cli("purge", "--status", "failed", "--older-than", "1h", "--yes")
    assert ok(none_old_enough).strip() == "deleted 0, already gone 0, failed 0"
    assert none_old_enough.stderr.startswith("0 task(s) with status failed created before ")

    refused = cli("purge", "--status", "failed", "--older-than", "0s", input="n\n")
    assert refused.exit_code == EXIT_ABORTED
    assert "3 task(s) with status failed" in refused.stderr and "Delete 3 task(s)?" in refused.stderr
    assert all(api.get(f"/api/v1/tasks/{t}").status_code == 200 for t in failed)

    done = json.loads(ok(cli("purge", "--status", "failed", "--older-than", "0s", "--yes", "--json")))
    assert (done["matched"], done["deleted"], done["already_gone"], done["failed"], done["more"]) == (
        3, 3, 0, [], False,
    )  # fmt: skip
    assert all(api.get(f"/api/v1/tasks/{t}").status_code == 404 for t in failed)
    assert support.get_task(api, kept)["status"] == "completed"


def test_purge_is_bounded(cli: Cli, api: httpx.Client) -> None:
    for _ in range(3):
        submitted(cli, "--type", "echo", "--payload", '"z"', "--delay", "60s")
    result = cli("purge", "--status", "scheduled", "--older-than", "0s", "--max", "2", "--yes")
    assert ok(result).strip() == "deleted 2, already gone 0, failed 0"
    assert "(and more: run again for the rest)" in result.stderr
    assert len(api.get("/api/v1/tasks").json()["items"]) == 1


@pytest.mark.parametrize("args", [("inbox",), ("inbox", "demo")])
def test_inbox_of_a_server_without_one_is_exit_3_saying_why(cli: Cli, args: tuple[str, ...]) -> None:
    result = cli(*args)  # this API runs without DEV_INBOX, as `make run-api` does
    assert result.exit_code == EXIT_NOT_FOUND, result.output
    assert "no development inbox (DEV_INBOX is off" in result.output


def test_unreachable_server_is_exit_6() -> None:
    url = f"http://127.0.0.1:{support.free_port()}"
    by_option = invoke("tasks", "list", "--url", url)
    assert by_option.exit_code == EXIT_UNREACHABLE and f"cannot reach the server at {url}" in by_option.stderr
    by_env = invoke("stats", env={"QUEUE_SYSTEM_URL": url})
    assert by_env.exit_code == EXIT_UNREACHABLE


@pytest.mark.parametrize("status", [401, 403])
def test_api_key_is_sent_and_never_shown(receiver: Receiver, status: int) -> None:
    problem = {"type": "urn:queue-system:problem:unauthorized", "status": status, "detail": "invalid API key"}
    receiver.program(
        default=Reply(status, {"Content-Type": "application/problem+json"}, json.dumps(problem).encode())
    )
    result = invoke("tasks", "list", "--url", receiver.url(""), env={"QUEUE_SYSTEM_API_KEY": "s3cret-key"})
    assert result.exit_code == EXIT_UNAUTHORIZED
    assert f"{status}" in result.stderr and "invalid API key" in result.stderr
    assert receiver.requests[0].headers["authorization"] == "Bearer s3cret-key"
    assert "s3cret" not in result.output


def test_an_answer_that_is_not_a_problem_is_exit_1(receiver: Receiver) -> None:
    receiver.program(default=Reply(502, {"Content-Type": "text/html"}, b"<h1>Bad Gateway</h1>\n<p>proxy</p>"))
    result = invoke("stats", "--url", receiver.url(""))
    assert result.exit_code == EXIT_API_ERROR
    assert result.stderr.strip() == "Error: 502 Bad Gateway: <h1>Bad Gateway</h1> <p>proxy</p>"


def test_validation_problem_names_the_field(cli: Cli) -> None:
    result = cli("tasks", "submit", "--webhook", "not-a-url")
    assert result.exit_code == EXIT_API_ERROR
    assert "422 Unprocessable Entity" in result.stderr and "url" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("tasks", "submit"),
        ("tasks", "submit", "--type", "echo", "--payload", "Hello"),  # not JSON: a string needs quotes
        ("tasks", "submit", "--type", "echo", "--method", "GET"),
        ("tasks", "submit", "--webhook", "http://127.0.0.1:9/x", "--header", "no-colon"),
        ("tasks", "submit", "--type", "echo", "--payload", "@/nonexistent/file.json"),
        ("tasks", "list", "--status", "bogus"),
        ("tasks", "list", "--url", "ftp://127.0.0.1"),
        ("purge", "--status", "failed"),
        ("purge", "--status", "failed", "--older-than", "soon"),
    ],
)
def test_usage_errors_are_exit_2(args: tuple[str, ...]) -> None:
    # Against an unreachable URL: a usage error must be found before any request is made.
    result = invoke(*args, env={"QUEUE_SYSTEM_URL": f"http://127.0.0.1:{support.free_port()}"})
    assert result.exit_code == EXIT_USAGE, result.output


def test_payload_from_a_file(cli: Cli, api: httpx.Client, tmp_path: Path) -> None:
    (tmp_path / "payload.json").write_text('{"a": "5", "b": "3", "op": "mul"}')
    task_id = submitted(cli, "--type", "math", "--payload", f"@{tmp_path / 'payload.json'}")
    assert support.wait_for_status(api, task_id, "completed")["result"] == "15.00"


def test_no_terminal_control_sequence_from_a_task_reaches_the_terminal(
    cli: Cli, api: httpx.Client, receiver: Receiver
) -> None:
    # Found by hand: a receiver's answer (or a payload, echoed in a result) is printed as is, so
    # ESC ] 52 set the operator's clipboard, ESC [ 2 J cleared their screen, U+202E reversed text.
    hostile = "\x1b]52;c;ZXZpbA==\x07\x1b[2Jgone\u202etxt\x9b31m"
    receiver.program(default=Reply(status=200, body=hostile.encode()))
    hook = submitted(cli, "--webhook", receiver.url("/hook"))
    echo = submitted(cli, "--type", "echo", "--payload", json.dumps(hostile))
    support.wait_for_status(api, hook, "completed")
    support.wait_for_status(api, echo, "completed")
    outputs = [ok(cli("tasks", "show", hook)), ok(cli("tasks", "show", echo)), ok(cli("tasks", "list"))]
    for out in outputs:
        assert not any(c in out for c in "\x1b\x07\u202e\x9b"), repr(out)
    assert "gone" in outputs[0] and "\\x1b" in outputs[0]  # shown, as visible escapes
