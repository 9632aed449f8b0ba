"""The CLI's ids and names under a stranger's hand, against a real API process (embedded Redis):
whatever text is given as a schedule id, task id or queue name, the command acts on that record
or none (exit 3 not found, 2 usage), never on another one, and never dies with a traceback."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queue_system.cli.http import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE
from queue_system.cli.main import main
from tests.e2e import support

pytestmark = pytest.mark.e2e
Cli = Callable[..., Result]
VICTIM = "a"  # a schedule, a task: what a mistyped id must never reach
# Text around the victim's id that an unescaped URL would cut or rewrite: `a?x` was `a`, `a#x` was
# `a`, `x/..` and `.` were other paths; and any text at all.
IDS = st.one_of(
    st.builds(lambda sep, tail: VICTIM + sep + tail, st.sampled_from("?#/%;& \\"), st.text(max_size=8)),
    st.sampled_from(["", ".", "..", "./a", "a/.", "x/../a", "%61", "a%3F", "a?", "a#"]),
    st.text(max_size=12),
).filter(lambda s: s != VICTIM and not s.startswith("-"))


@pytest.fixture(scope="module")
def base_url(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with support.api_only(redis_url, tmp_path_factory.mktemp("cli-ids-logs"), "api-cli-ids") as url:
        yield url


@pytest.fixture
def cli(base_url: str, redis_client: object) -> Cli:
    def run(*args: str) -> Result:
        runner = CliRunner(env={"QUEUE_SYSTEM_URL": None, "QUEUE_SYSTEM_API_KEY": None})
        return runner.invoke(main, [*args, "--url", base_url], catch_exceptions=True)

    return run


def _victims(api: httpx.Client) -> None:
    schedule = {"id": VICTIM, "task": {"type": "echo", "payload": "x"}, "every": "1h"}
    assert api.post("/api/v1/schedules", json=schedule).status_code in (200, 201)
    task = {"id": VICTIM, "type": "echo", "payload": "x"}
    assert api.post("/api/v1/tasks", json=task).status_code in (200, 201)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(IDS)
def test_an_id_reaches_its_own_record_or_none(cli: Cli, base_url: str, given_id: str) -> None:
    """Before: `schedules delete 'a?x' --yes` deleted schedule `a` (and `tasks delete`, `pause`,
    `cancel` alike); `schedules show .` died with KeyError (it had read the list)."""
    with httpx.Client(base_url=base_url, timeout=10) as api:
        _victims(api)
        for args in (
            ("schedules", "show", given_id),
            ("schedules", "pause", given_id),
            ("schedules", "delete", given_id, "--yes"),
            ("tasks", "show", given_id),
            ("tasks", "cancel", given_id),
            ("tasks", "delete", given_id, "--yes"),
            ("queues", "pause", given_id),
        ):
            result = cli(*args)
            assert result.exit_code in (EXIT_NOT_FOUND, EXIT_USAGE), (args, result.output, result.exception)
            assert not result.exception or isinstance(result.exception, SystemExit), result.exception
        schedule = api.get(f"/api/v1/schedules/{VICTIM}")
        assert schedule.status_code == 200 and schedule.json()["paused"] is False
        assert api.get(f"/api/v1/tasks/{VICTIM}").json()["status"] == "pending"
        assert all(not q["paused"] for q in api.get("/api/v1/queues").json()["items"])


def test_an_id_with_url_characters_is_found_when_it_exists(cli: Cli, base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as api:
        body = {"id": "team:nightly.v2", "task": {"type": "echo", "payload": "x"}, "every": "1h"}
        assert api.post("/api/v1/schedules", json=body).status_code == 201
    assert cli("schedules", "pause", "team:nightly.v2").exit_code == EXIT_OK
    assert cli("schedules", "delete", "team:nightly.v2", "--yes").exit_code == EXIT_OK


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from("?#/"), st.text(max_size=6))
def test_an_operation_id_reaches_its_own_operation_or_none(
    cli: Cli, base_url: str, sep: str, tail: str
) -> None:
    """Before: `operations show 'ID?x'` showed operation ID and `operations cancel 'ID#x'` reached it."""
    with httpx.Client(base_url=base_url, timeout=10) as api:
        started = api.post("/api/v1/tasks/actions/cancel", json={"status": ["pending"]})
        assert started.status_code == 202, started.text
        victim = started.json()["id"]
    for args in (("operations", "show", victim + sep + tail), ("operations", "cancel", victim + sep + tail)):
        result = cli(*args)
        assert result.exit_code in (EXIT_NOT_FOUND, EXIT_USAGE), (args, result.output)
