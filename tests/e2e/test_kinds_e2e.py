"""Every task kind, options and a user-defined kind, end to end through real API and worker
processes: email to a real SMTP server, scheduling, exponential backoff, the priority queue."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from queue_system.local.embedded import EmbeddedRedis
from tests.e2e import support
from tests.e2e.support import get_task, outcomes, submit, timestamp, wait_for_status
from tests.support.smtp import EphemeralController, Mailbox

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    handler = Mailbox()
    controller = EphemeralController(handler, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def services(redis_url: str, e2e_logs: Path, mailbox: tuple[Mailbox, int]) -> Iterator[support.Stack]:
    env = {
        "TASK_MODULES": "tests.user_kinds",
        "SMTP_URL": f"smtp://127.0.0.1:{mailbox[1]}",
        "EMAIL_FROM": "queue@example.test",
        "WORKER_BACKOFF_MIN": "200ms",
        "WORKER_BACKOFF_MAX": "2s",
        "TASK_MIN_RETRY_DELAY": "100ms",  # the tasks below ask for 200ms retries
    }
    with support.stack(redis_url, e2e_logs, **env) as running:
        yield running


@pytest.mark.parametrize(
    ("type_", "payload", "result"),
    [
        ("echo", "Hello", "echo: Hello"),
        ("reverse", "Hello", "olleH"),
        ("sum", [1, 2, 5], "8.00"),
        ("sum", "[1, 2, 5]", "8.00"),
        ("math", {"a": "5", "b": "3", "op": "mul"}, "15.00"),
        ("math", {"a": 5, "b": 3}, "8.00"),
        ("slow", {"seconds": 0.2}, None),
        ("flaky", {"fail_rate": 0}, None),
    ],
)
def test_kind_succeeds(api: httpx.Client, type_: str, payload: object, result: object) -> None:
    task = wait_for_status(api, submit(api, {"type": type_, "payload": payload}), "completed", timeout=15)
    assert task["attempts"] == 1
    if result is not None:
        assert task["result"] == result


def test_finished_tasks_leave_no_dramatiq_message_behind(
    api: httpx.Client, redis_client: redis.Redis
) -> None:
    # The finish script acknowledges each message (worker/broker.py): once the tasks are done,
    # Dramatiq holds no message body and no unacknowledged id, so nothing would be redelivered.
    ids = [submit(api, {"type": "echo", "payload": f"m{i}"}) for i in range(40)]
    for task_id in ids:
        wait_for_status(api, task_id, "completed", timeout=15)

    def drained() -> bool:
        acks = [k for k in redis_client.scan_iter("qs:dramatiq:__acks__.*") if redis_client.scard(k)]
        return redis_client.hlen("qs:dramatiq:default.msgs") == 0 and not acks

    assert support.poll(drained, timeout=5)


def test_division_by_zero_fails_at_once(api: httpx.Client) -> None:
    task_id = submit(api, {"type": "math", "payload": {"a": 1, "b": 0, "op": "div"}})
    task = wait_for_status(api, task_id, "failed", timeout=15)
    assert task["attempts"] == 1
    assert "division by zero" in task["last_error"]
    assert outcomes(task) == ["permanent"]


def test_flaky_retries_with_exponential_backoff_then_fails(api: httpx.Client) -> None:
    retry = {"strategy": "exponential", "max_retries": 3, "min_delay": "200ms", "max_delay": "1s"}
    task_id = submit(api, {"type": "flaky", "payload": {"fail_rate": 1}, "retry": retry})
    task = wait_for_status(api, task_id, "failed", timeout=30)
    assert outcomes(task) == ["transient"] * 4
    starts = [timestamp(a["started_at"]) for a in task["attempt_history"]]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    for n, gap in enumerate(gaps, start=1):
        ceiling = min(1.0, 0.2 * 2 ** (n - 1))
        # At least the minimum delay; at most the jittered ceiling plus pick-up latency.
        assert 0.2 <= gap <= ceiling + 1.0, (n, gaps)


def test_email_is_delivered_over_smtp(api: httpx.Client, mailbox: tuple[Mailbox, int]) -> None:
    handler, _ = mailbox
    before = len(handler.received)
    payload = {
        "to": ["ops@example.test"],
        "cc": ["cc@example.test"],
        "subject": "Deploy done",
        "body": "All good.",
    }
    task = wait_for_status(api, submit(api, {"type": "email", "payload": payload}), "completed", timeout=15)
    assert len(handler.received) == before + 1
    message = handler.message(before)
    assert message["Subject"] == "Deploy done"
    assert message["From"] == "queue@example.test"
    assert message["To"] == "ops@example.test"
    assert message["Cc"] == "cc@example.test"
    assert message.get_content().strip() == "All good."
    assert task["result"]["accepted"] == ["ops@example.test", "cc@example.test"]


def test_bad_kind_payload_is_rejected_at_submit(api: httpx.Client) -> None:
    r = api.post("/api/v1/tasks", json={"type": "math", "payload": {"a": "five", "b": 1}})
    assert r.status_code == 422
    assert r.json()["field"] == "payload.a"


def test_user_defined_kind(api: httpx.Client) -> None:
    task_id = submit(api, {"type": "shout", "payload": {"text": "hi", "times": 2}})
    task = wait_for_status(api, task_id, "completed", timeout=15)
    assert task["result"] == {"shouted": "HI HI", "attempt": 1}
    bad = api.post("/api/v1/tasks", json={"type": "shout", "payload": {"text": "hi", "times": "x"}})
    assert bad.status_code == 422
    assert bad.json()["field"] == "payload.times"
    failed = wait_for_status(
        api, submit(api, {"type": "shout", "payload": {"text": "a", "times": 0}}), "failed"
    )
    assert failed["last_error"].startswith("times must be positive")
    unknown = api.post("/api/v1/tasks", json={"type": "whisper", "payload": {}})
    assert unknown.status_code == 422
    assert "shout" in unknown.json()["known_types"]


def test_delayed_task_runs_after_its_delay_not_before(api: httpx.Client) -> None:
    task_id = submit(api, {"type": "echo", "payload": "later", "delay": "1500ms"})
    assert get_task(api, task_id)["status"] == "scheduled"
    task = wait_for_status(api, task_id, "completed", timeout=15)
    started = timestamp(task["attempt_history"][0]["started_at"])
    assert started >= timestamp(task["created_at"]) + 1.5


def test_cancelled_scheduled_task_never_runs(api: httpx.Client) -> None:
    task_id = submit(api, {"type": "echo", "payload": "never", "delay": "500ms"})
    assert api.post(f"/api/v1/tasks/{task_id}/cancel").json()["status"] == "cancelled"
    assert not support.poll(lambda: get_task(api, task_id)["attempts"] > 0, timeout=1.5)


def test_manual_retry_runs_a_failed_task_again(api: httpx.Client) -> None:
    task_id = submit(api, {"type": "math", "payload": {"a": 1, "b": 0, "op": "div"}})
    wait_for_status(api, task_id, "failed", timeout=15)
    assert api.post(f"/api/v1/tasks/{task_id}/retry").status_code == 200
    task = support.wait_for_task(api, task_id, lambda t: t["attempts"] == 2 and t["status"] == "failed", 15)
    assert [a["trigger"] for a in task["attempt_history"]] == ["auto", "manual"]


def test_priority_queue_is_served_first_under_a_backlog(
    tmp_path_factory: pytest.TempPathFactory, e2e_logs: Path
) -> None:
    # A Redis of its own: the module's 4-thread worker consumes the shared one and would drain the
    # backlog beside the one-thread worker under test (a flaky count on a busy machine).
    private = EmbeddedRedis(tmp_path_factory.mktemp("prio"), persist=False)
    with (
        _running(private) as url,
        support.stack(url, e2e_logs, WORKER_CONCURRENCY="1") as one_thread,
        httpx.Client(base_url=one_thread.base_url, timeout=10) as api,
    ):
        backlog = [submit(api, {"type": "slow", "payload": {"seconds": 0.1}}) for _ in range(30)]
        urgent = submit(api, {"type": "echo", "payload": "urgent", "queue": "priority"})
        done = wait_for_status(api, urgent, "completed", timeout=20)
        finished_at = timestamp(done["completed_at"])
        later = [
            t
            for t in (get_task(api, i) for i in backlog)
            if t["completed_at"] is None or timestamp(t["completed_at"]) > finished_at
        ]
        assert len(later) >= 15, f"only {len(later)} of 30 backlog tasks finished after the priority task"


@contextlib.contextmanager
def _running(server: EmbeddedRedis) -> Iterator[str]:
    url = server.start()
    try:
        yield url
    finally:
        server.stop()
