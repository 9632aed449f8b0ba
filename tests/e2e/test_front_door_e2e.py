"""The first minute, as the README writes it, on a real `queue-system run` (cmd/run.py: embedded
Redis, the API, two worker processes) on a free, non-default API_PORT:

- the start prints one line per component with its address, and nothing that reads like an error;
- the README's first webhook, to the development inbox, is delivered by the real worker (signed,
  and verified by the inbox) and shows up through the API and `queue-system inbox`;
- the CLI, run as a separate process with no QUEUE_SYSTEM_URL and no API_PORT, finds the API
  (`run.json` in DATA_DIR), and `queue-system config` says so;
- a Ctrl-C stops it all, still with nothing that reads like an error.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from queue_system.transports.signing import new_secret
from tests.e2e import support
from tests.e2e.support import wait_for_status
from tests.support.examples import as_request, first_minute

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

ALARMING = re.compile(r"error|lost|traceback|critical", re.IGNORECASE)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def cli(args: list[str], data_dir: Path, **given: str) -> subprocess.CompletedProcess[str]:
    """`queue-system ...` as a user types it in another terminal of the checkout: none of our
    variables but `given`."""
    env = support.child_env()
    for name in ("API_HOST", "API_PORT", "QUEUE_SYSTEM_URL"):
        env.pop(name, None)
    env["DATA_DIR"] = str(data_dir)  # the checkout's var/, here a test's own
    env.update(given)
    command = [sys.executable, "-m", "queue_system", *args[1:]]
    return subprocess.run(command, env=env, cwd=support.ROOT, capture_output=True, text=True, timeout=30)


def test_the_readme_first_minute_on_a_fresh_run(
    tmp_path_factory: pytest.TempPathFactory, e2e_logs: Path
) -> None:
    data_dir = tmp_path_factory.mktemp("front")  # short: the Redis unix socket lives under it
    port = support.free_port()
    env = support.child_env(
        DATA_DIR=str(data_dir), API_PORT=str(port), WORKER_PROCESSES="2", WEBHOOK_SIGNING_SECRET=new_secret()
    )
    del env["EGRESS_ALLOW_CIDRS"]  # as a newcomer has it: `make run` opens loopback itself
    base_url = f"http://127.0.0.1:{port}"
    with support.local_run("run-front-door", env, e2e_logs) as local:
        run = local.proc
        run.expect_log("ready; Ctrl-C stops everything", timeout=40)
        run.expect_log("worker ready", count=2, timeout=30)
        local.note_children()
        started = ANSI.sub("", run.log())
        for line in (
            "run Redis: embedded, REDIS_URL=unix://",
            "run mailbox: SMTP_URL=smtp://127.0.0.1:",
            f"run API: {base_url} (dashboard {base_url}/dashboard/",
            f"run inbox: webhooks to {base_url}/dev/inbox/{{name}} show at {base_url}/dashboard/inbox",
        ):
            assert started.count(line) == 1, (line, started)
        assert started.count("worker worker ready") == 2, started
        assert not ALARMING.search(started), started

        curl, inbox_command = first_minute()
        method, path, headers, data = as_request(curl)
        body = (data or "").replace("127.0.0.1:8080", f"127.0.0.1:{port}")  # the free port of this run
        with httpx.Client(base_url=base_url, timeout=10) as api:
            created = api.request(method, path, headers=headers, content=body)
            assert created.status_code == 201, created.text
            wait_for_status(api, created.json()["id"], "completed", timeout=20)
            [got] = api.get("/api/v1/dev/inbox/demo").json()["items"]
        assert got["signature"] == "verified" and got["task_id"] == created.json()["id"]
        assert ["x-custom-header", "test"] in got["headers"] and got["body"] == '{"test": "data"}'

        shown = cli(inbox_command, data_dir)
        assert shown.returncode == 0, shown.stderr
        assert (
            "POST /dev/inbox/demo  signature verified" in shown.stdout and '{"test": "data"}' in shown.stdout
        )
        listed = cli(["queue-system", "tasks", "list"], data_dir)
        assert listed.returncode == 0, listed.stderr
        assert created.json()["id"] in listed.stdout and "completed" in listed.stdout
        elsewhere = cli(["queue-system", "tasks", "list"], Path("/nonexistent"), API_PORT=str(port))
        assert elsewhere.returncode == 0 and created.json()["id"] in elsewhere.stdout, elsewhere.stderr
        config = cli(["queue-system", "config"], data_dir)
        assert f"url:      {base_url}  (from {data_dir / 'run.json'}" in config.stdout, config.stdout
        assert "server:   answers" in config.stdout

        run.send(signal.SIGINT)
        assert run.wait(timeout=40) == 0, run.tail()
        assert not (data_dir / "run.json").exists()
        log = ANSI.sub("", run.log())
        assert not ALARMING.search(log), log
    assert support.poll(lambda: not any(support.alive(p) for p in local.children), timeout=10), local.children
