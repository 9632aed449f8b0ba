"""Schedules' two bounds on a real Redis: `overlap: skip` (a tick fires only once the schedule's
previous task is finished; decided in fire.lua) with a Hypothesis property over tick/claim/finish
interleavings, and SCHEDULES_MAX (a create beyond it is a 409 naming the limit, an update or a
repeated create of an existing id is not counted)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.config.settings import load_settings
from queue_system.domain.models import Attempt, AttemptResult, Outcome, TaskStatus
from queue_system.domain.retry import Decision
from queue_system.service.schedules import fire_due
from queue_system.storage import scripts
from queue_system.storage.keys import Keys
from queue_system.storage.schedules import ScheduleRecord, ScheduleStore, Template, save_args
from queue_system.storage.types import Claim
from queue_system.storage.worker_store import RedisTaskStore
from tests.support.api import assert_problem
from tests.support.bulk import status_of

ECHO = {"type": "echo", "payload": "tick"}
FINISHED = {"completed", "failed", "cancelled", None}
SID = "s"


def _app(redis_url: str, **env: str) -> TestClient[Any]:
    return TestClient(create_app(load_settings({"REDIS_URL": redis_url, **env})))


@pytest.fixture
def client(redis_client: redis.Redis, redis_url: str) -> Iterator[TestClient[Any]]:
    with _app(redis_url) as test_client:
        yield test_client


def _save(client: redis.Redis, overlap: str, catch_up: str, next_run: int) -> None:
    template = msgspec.json.encode(Template("echo", "default", '"x"', "fp", [])).decode()
    rec = ScheduleRecord(
        id=SID, body="{}", template=template, cron=None, timezone=None, every_ms=1000,
        catch_up=catch_up, paused=False, next_run_at=next_run, last_run_at=None, created_at=0,
        last_tasks=[], overlap=overlap,
    )  # fmt: skip
    saved = save_args(rec, 0, create=True)
    assert client.register_script(scripts.SCHEDULE_SAVE)(keys=[Keys().prefix], args=saved) == 1


def _claim(store: RedisTaskStore, task_id: str, now: int) -> Claim | None:
    claim = store.claim(task_id, 1, now, now + 10**9)
    return claim if isinstance(claim, Claim) else None


def _complete(store: RedisTaskStore, claim: Claim, now: int) -> None:
    attempt = Attempt(n=1, started_at=now, duration_ms=1, outcome=Outcome.SUCCESS, status_code=None)
    result = AttemptResult(Outcome.SUCCESS)
    store.finish(claim.task, attempt, Decision(TaskStatus.COMPLETED), result, now=now, retention_ms=10**9)


def test_skip_fires_only_once_the_previous_task_finished(
    client: TestClient[Any], redis_client: redis.Redis
) -> None:
    body = {"task": ECHO, "every": "1s", "overlap": "skip"}
    created = client.post("/api/v1/schedules", json=body).json()
    assert (created["overlap"], created["skipped_ticks"]) == ("skip", 0)
    schedules, tasks = ScheduleStore(redis_client, Keys()), RedisTaskStore(redis_client)
    rec = schedules.read(created["id"])
    assert rec is not None
    first, t = rec.next_run_at, rec.next_run_at
    assert fire_due(schedules, t + 10) == 1
    assert fire_due(schedules, t + 1010) == 0  # pending: skipped
    claim = _claim(tasks, f"{rec.id}@{first}", t + 1500)
    assert claim is not None
    assert fire_due(schedules, t + 2010) == 0  # processing: skipped
    _complete(tasks, claim, t + 2500)
    assert fire_due(schedules, t + 3010) == 1  # completed: fires again
    shown = client.get(f"/api/v1/schedules/{rec.id}").json()
    assert shown["skipped_ticks"] == 2
    assert shown["last_tasks"] == [f"{rec.id}@{first + 3000}", f"{rec.id}@{first}"]
    tasks.close()


def test_skip_with_catch_up_all_fires_one_task_for_the_missed_ticks(redis_client: redis.Redis) -> None:
    """Missed ticks are skipped, not queued: one task (the newest tick), the others counted."""
    _save(redis_client, "skip", "all", 10_000)
    store = ScheduleStore(redis_client, Keys())
    assert fire_due(store, 14_500) == 1  # ticks 10..14 s: the newest fires
    rec = store.read(SID)
    assert rec is not None and rec.skipped_ticks == 4
    assert status_of(redis_client, f"{SID}@14000") == "pending"
    assert status_of(redis_client, f"{SID}@10000") is None


def test_allow_keeps_todays_behaviour(client: TestClient[Any], redis_client: redis.Redis) -> None:
    created = client.post("/api/v1/schedules", json={"task": ECHO, "every": "1s"}).json()
    assert created["overlap"] == "allow"
    store = ScheduleStore(redis_client, Keys())
    rec = store.read(created["id"])
    assert rec is not None
    assert [fire_due(store, rec.next_run_at + i * 1000 + 10) for i in range(3)] == [1, 1, 1]
    changed = client.patch(f"/api/v1/schedules/{rec.id}", json={"overlap": "skip"}).json()
    assert (changed["overlap"], changed["every_ms"]) == ("skip", 1000)
    assert fire_due(store, rec.next_run_at + 3010) == 0  # three tasks pending: skipped now
    assert_problem(client.patch(f"/api/v1/schedules/{rec.id}", json={"overlap": "replace"}), 422, "overlap")


STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("tick"), st.integers(1, 4_000)),
        st.tuples(st.sampled_from(["claim", "complete", "cancel"]), st.integers(0, 20)),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["allow", "skip"]), STEPS)
def test_random_ticks_and_finishes(redis_client: redis.Redis, overlap: str, steps: list[Any]) -> None:
    """skip: never two unfinished tasks of the schedule at once, and every tick is either fired
    or counted as skipped; allow (catch_up all): one task per tick, whatever is unfinished."""
    redis_client.flushdb()
    _save(redis_client, overlap, "all", 1_000)
    schedules, tasks = ScheduleStore(redis_client, Keys()), RedisTaskStore(redis_client)
    cancel = redis_client.register_script(scripts.CANCEL)
    now, claims = 999, {}  # just before the first tick
    for action, n in steps:
        ids = [f"{SID}@{tick}" for tick in range(1_000, now + 1, 1_000)]
        if action == "tick":
            now += n
            fire_due(schedules, now)
        elif ids:
            task_id = ids[n % len(ids)]
            if action == "claim" and (claim := _claim(tasks, task_id, now)) is not None:
                claims[task_id] = claim
            elif action == "complete" and task_id in claims:
                _complete(tasks, claims.pop(task_id), now)
            elif action == "cancel":
                cancel(keys=[Keys().prefix], args=[task_id, now, 10**9])
        ids = [f"{SID}@{tick}" for tick in range(1_000, now + 1, 1_000)]
        states = [status_of(redis_client, i) for i in ids]
        rec = schedules.read(SID)
        assert rec is not None
        if overlap == "skip":
            assert sum(s not in FINISHED for s in states) <= 1
            assert sum(s is not None for s in states) + rec.skipped_ticks == len(ids)
        else:
            assert None not in states and rec.skipped_ticks == 0
    tasks.close()


def test_schedules_max_refuses_a_create_beyond_it(redis_client: redis.Redis, redis_url: str) -> None:
    with _app(redis_url, SCHEDULES_MAX="2") as client:
        for sid in ("a", "b"):
            answer = client.post("/api/v1/schedules", json={"id": sid, "task": ECHO, "every": "1m"})
            assert answer.status_code == 201
        full = client.post("/api/v1/schedules", json={"task": ECHO, "every": "1m"})
        problem = assert_problem(full, 409)
        assert (problem["setting"], problem["limit"]) == ("SCHEDULES_MAX", 2)
        assert problem["detail"] == "limit reached: SCHEDULES_MAX is 2; delete a schedule first"
        # Not counted: a repeated create of an existing id (a redeploy), and a change of one.
        again = client.post("/api/v1/schedules", json={"id": "a", "task": ECHO, "every": "1m"})
        assert again.status_code == 200
        assert client.patch("/api/v1/schedules/a", json={"every": "5m"}).status_code == 200
        assert client.delete("/api/v1/schedules/b").status_code == 204
        assert client.post("/api/v1/schedules", json={"task": ECHO, "every": "1m"}).status_code == 201
        assert len(client.get("/api/v1/schedules").json()["items"]) == 2


@pytest.mark.parametrize("value", ["0", "1000001", "many"])
def test_schedules_max_bounds(value: str) -> None:
    with pytest.raises(Exception, match="SCHEDULES_MAX"):
        load_settings({"SCHEDULES_MAX": value})
