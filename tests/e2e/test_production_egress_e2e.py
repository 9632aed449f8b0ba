"""`queue-system run` with ENV=production opens no blocked range implicitly (issue 17, point 6): a
real run (embedded Redis, API, worker), its children's environments, a webhook to loopback."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import httpx
import pytest

from tests.e2e import support
from tests.e2e.support import submit, wait_for_status
from tests.support.receiver import Receiver

pytestmark = pytest.mark.e2e

KEY = "e2e-production-key-0123456789"


def _resolves_to_loopback(name: str) -> bool:
    try:
        return all(
            str(info[4][0]).startswith("127.") for info in socket.getaddrinfo(name, 80, socket.AF_INET)
        )
    except OSError:
        return False


def test_production_run_leaves_loopback_blocked(
    tmp_path_factory: pytest.TempPathFactory, e2e_logs: Path
) -> None:
    data_dir = tmp_path_factory.mktemp("prod")  # short: the Redis unix socket lives under it
    port = support.free_port()
    env = support.child_env(ENV="production", API_KEYS=KEY, DATA_DIR=str(data_dir), API_PORT=str(port))
    del env["EGRESS_ALLOW_CIDRS"]  # what an operator who never set it has
    base_url = f"http://127.0.0.1:{port}"
    with support.local_run("run-production", env, e2e_logs) as local:
        run = local.proc
        support.wait_ready(run, base_url, timeout=40)
        children = local.note_children()
        for pid in children:  # neither the API nor the worker (nor Redis) was given an allowance
            with open(f"/proc/{pid}/environ", "rb") as environ:
                allowed = b"\0EGRESS_ALLOW_CIDRS=" in b"\0" + environ.read()
            assert not allowed, f"process {pid} was given EGRESS_ALLOW_CIDRS"
        headers = {"Authorization": f"Bearer {KEY}"}
        with Receiver() as receiver, httpx.Client(base_url=base_url, timeout=10, headers=headers) as client:
            refused = client.post("/api/v1/tasks", json={"url": receiver.url("/hook")})
            assert refused.status_code == 422, refused.text
            assert refused.json()["field"] == "url" and "egress blocked" in refused.json()["detail"]
            # A name (not a literal, so the submit cannot tell) that resolves to loopback: the
            # worker refuses to connect, permanently, and the receiver sees nothing.
            name = socket.gethostname()
            if _resolves_to_loopback(name):
                task_id = submit(client, {"url": f"http://{name}:{receiver.port}/hook"})
                task = wait_for_status(client, task_id, "failed", timeout=20)
                assert "egress blocked" in task["last_error"], task
                assert task["attempts"] == 1 and receiver.count == 0
        run.send(signal.SIGINT)
        assert run.wait(timeout=25) == 0, run.tail()
