"""Where the client commands point when nothing says: the server's own API_HOST/API_PORT, so
`API_PORT=8100 make run` then `queue-system tasks list` needs no QUEUE_SYSTEM_URL; `--url` and
QUEUE_SYSTEM_URL still win; `queue-system config` says which, and never prints a key."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from queue_system.cli.http import EXIT_OK, EXIT_USAGE, default_url
from queue_system.cli.main import main
from queue_system.local import run_state
from tests.e2e import support
from tests.support.receiver import Receiver

UNSET: dict[str, str | None] = {
    "QUEUE_SYSTEM_URL": None,
    "QUEUE_SYSTEM_API_KEY": None,
    "API_HOST": None,
    "API_PORT": None,
}


@pytest.fixture(autouse=True)
def _no_run_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """DATA_DIR empty: no `make run` state from the developer's own checkout (var/run.json)."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path))


def invoke(*args: str, **env: str) -> Result:
    return CliRunner(env=UNSET | env).invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "http://127.0.0.1:8080"),
        ({"API_PORT": "8100"}, "http://127.0.0.1:8100"),
        ({"API_HOST": "0.0.0.0", "API_PORT": "8100"}, "http://127.0.0.1:8100"),
        ({"API_HOST": "10.1.2.3"}, "http://10.1.2.3:8080"),
        ({"API_HOST": "::"}, "http://[::1]:8080"),
        ({"API_HOST": "::1", "API_PORT": "9"}, "http://[::1]:9"),
    ],
)
def test_the_address_follows_the_servers_settings(env: dict[str, str], url: str, tmp_path: Path) -> None:
    assert default_url({**env, "DATA_DIR": str(tmp_path)})[0] == url


def test_a_live_make_run_in_this_directory_is_found_and_a_dead_one_is_not(tmp_path: Path) -> None:
    run_state.write(tmp_path, "http://127.0.0.1:8100")  # as `queue-system run` does once the API answers
    url, why = default_url({"DATA_DIR": str(tmp_path)})
    assert url == "http://127.0.0.1:8100" and "run.json" in why and str(os.getpid()) in why
    assert default_url({"DATA_DIR": str(tmp_path), "API_PORT": "9"})[0] == "http://127.0.0.1:9"  # wins
    (tmp_path / run_state.FILE).write_text(
        json.dumps({"api_url": "http://127.0.0.1:8100", "pid": dead_pid()})
    )
    assert default_url({"DATA_DIR": str(tmp_path)})[0] == "http://127.0.0.1:8080"
    (tmp_path / run_state.FILE).write_text("not json")
    assert default_url({"DATA_DIR": str(tmp_path)})[0] == "http://127.0.0.1:8080"


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_config_says_where_and_why_and_never_prints_the_key() -> None:
    port = support.free_port()  # nothing listens: config still answers, saying so
    by_settings = invoke("config", "--json", API_PORT=str(port))
    assert by_settings.exit_code == EXIT_OK, by_settings.output
    said = json.loads(by_settings.stdout)
    assert said["url"] == f"http://127.0.0.1:{port}" and said["url_from"] == f"from API_PORT={port}"
    assert said["api_key"] is False and said["server"].startswith("does not answer")

    with Receiver() as rx:
        env = {"API_PORT": str(port), "QUEUE_SYSTEM_URL": rx.url(""), "QUEUE_SYSTEM_API_KEY": "s3cret-key"}
        by_variable = invoke("config", **env)
        assert by_variable.exit_code == EXIT_OK, by_variable.output
        assert f"url:      {rx.url('')}  (QUEUE_SYSTEM_URL)" in by_variable.stdout
        assert "api key:  set (QUEUE_SYSTEM_API_KEY)" in by_variable.stdout
        assert "server:   answers" in by_variable.stdout
        assert "s3cret-key" not in by_variable.output
        by_option = invoke("config", "--url", f"http://127.0.0.1:{port}", "--api-key", "other-key-1", **env)
        assert "(--url)" in by_option.stdout and "set (--api-key)" in by_option.stdout
        assert "other-key-1" not in by_option.output


def test_a_malformed_api_port_is_a_usage_error_naming_it() -> None:
    result = invoke("tasks", "list", API_PORT="eighty")
    assert result.exit_code == EXIT_USAGE
    assert "API_PORT" in result.output
