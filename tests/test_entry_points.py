"""The `queue-system` command and the `cmd/*.py` wrappers (the processes themselves: tests/e2e)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from queue_system.cli.main import main
from queue_system.config.settings import load_settings
from queue_system.domain.queues import QUEUES
from queue_system.worker.launch import dramatiq_command

ROOT = Path(__file__).resolve().parent.parent


def test_worker_becomes_the_dramatiq_cli_with_the_settings() -> None:
    settings = load_settings({"WORKER_PROCESSES": "3", "WORKER_CONCURRENCY": "5", "WORKER_PREFETCH": "7"})
    argv, env = dramatiq_command(settings, {"PATH": "/bin"})
    assert argv[:4] == [sys.executable, "-m", "dramatiq", "queue_system.worker.app"]
    assert argv[argv.index("--processes") + 1] == "3"
    assert argv[argv.index("--threads") + 1] == "5"
    queues = argv[argv.index("--queues") + 1 : argv.index("--worker-shutdown-timeout")]
    assert queues == list(QUEUES)  # every queue the API enqueues to
    assert argv[-1] == str(30_000 + 30_000)  # the request timeout, then 30 s to record the outcome
    assert env == {"PATH": "/bin", "dramatiq_worker_timeout": "100", "dramatiq_queue_prefetch": "7"}
    assert "--path" not in argv and "PYTHONPATH" not in env  # the package is installed


def test_an_operator_may_set_dramatiq_s_poll_timeout() -> None:
    _, env = dramatiq_command(load_settings({}), {"dramatiq_worker_timeout": "1000"})
    assert env["dramatiq_worker_timeout"] == "1000"
    assert "dramatiq_queue_prefetch" not in env  # 0: Dramatiq's default


@pytest.mark.parametrize("command", ["api", "worker", "run"])
def test_a_bad_setting_stops_with_the_variable_and_code_2(command: str) -> None:
    result = CliRunner().invoke(main, [command], env={"API_PORT": "eighty", "REDIS_URL": "redis://h"})
    assert result.exit_code == 2
    assert "configuration error: API_PORT: 'eighty' is not a whole number" in result.output


@pytest.mark.parametrize("command", ["api", "worker"])
def test_api_and_worker_need_redis(command: str) -> None:
    result = CliRunner().invoke(main, [command], env={"REDIS_URL": "", "REDIS_ADDR": ""})
    assert result.exit_code == 2
    assert "REDIS_URL (or REDIS_ADDR) is not set" in result.output


def test_cmd_wrappers_only_call_the_cli() -> None:
    assert not (ROOT / "cmd" / "__init__.py").exists()
    for name in ("api", "worker", "run"):
        source = (ROOT / "cmd" / f"{name}.py").read_text()
        assert f'main(["{name}", *sys.argv[1:]]' in source
        assert "sys.path" not in source and "PYTHONPATH" not in source


def test_a_wrapper_runs_by_path() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "cmd" / "api.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Serve the HTTP API" in done.stdout
