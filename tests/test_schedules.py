"""Schedules: next runs (DST both ways, Hypothesis over cron and zones), firing exactly once on a
real Redis (two planners racing, a repeated firing, a delete), and the API's problems."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.config.settings import load_settings, parse_duration_ms
from queue_system.domain.schedules import MAX_CATCH_UP, CatchUp, Timing, every_text, plan, timing
from queue_system.service.schedules import fire_due
from queue_system.storage.keys import Keys
from queue_system.storage.schedules import ScheduleStore
from tests.support.api import assert_problem

BERLIN = ZoneInfo("Europe/Berlin")


def _ms(*args: int, tz: ZoneInfo = BERLIN) -> int:
    return int(datetime(*args, tzinfo=tz).timestamp() * 1000)  # type: ignore[misc, arg-type]


def _local(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, BERLIN).isoformat()


def _runs(t: Timing, start: int, n: int) -> list[int]:
    out = [t.next_after(start)]
    while len(out) < n:
        out.append(t.next_after(out[-1]))
    return out


def test_skipped_hour_fires_once_right_after_the_jump() -> None:
    runs = _runs(timing("30 2 * * *", "Europe/Berlin", None), _ms(2026, 3, 28, 12), 3)
    assert [_local(r) for r in runs] == [
        "2026-03-29T03:00:00+02:00",  # 02:30 does not exist that night: once, at the jump
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]


def test_repeated_hour_fires_once() -> None:
    runs = _runs(timing("30 2 * * *", "Europe/Berlin", None), _ms(2026, 10, 24, 12), 3)
    assert [_local(r) for r in runs] == [
        "2026-10-25T02:30:00+02:00",  # 02:30 happens twice that night: the first only
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
    ]


def test_every_and_aliases() -> None:
    assert timing(None, None, 5000).next_after(12_345) == 15_000
    hourly = timing("@hourly", None, None)
    assert hourly.next_after(_ms(2026, 1, 1, 10, 5, tz=ZoneInfo("UTC"))) == _ms(
        2026, 1, 1, 11, tz=ZoneInfo("UTC")
    )


CRONS = st.sampled_from(["* * * * *", "*/5 * * * *", "30 2 * * *", "0 */3 * * 1-5", "15 1,2,3 * * *",
                         "0 0 1 * *", "@hourly", "@daily", "59 23 31 12 *"])  # fmt: skip
ZONES = st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"])
NOW = st.integers(_ms(2020, 1, 1, tz=ZoneInfo("UTC")), _ms(2035, 1, 1, tz=ZoneInfo("UTC")))


@settings(max_examples=60, deadline=None)
@given(CRONS, ZONES, NOW)
def test_next_runs_are_after_now_and_strictly_increasing(cron: str, zone: str, now: int) -> None:
    runs = _runs(timing(cron, zone, None), now, 5)
    assert runs[0] > now
    assert all(a < b for a, b in itertools.pairwise(runs))


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.builds(lambda c, z: timing(c, z, None), CRONS, ZONES),
        st.builds(lambda s: timing(None, None, s * 1000), st.integers(1, 7200)),
    ),
    NOW,
    st.integers(0, 3 * 86_400_000),
    st.sampled_from(list(CatchUp)),
)
def test_a_plan_never_fires_a_tick_twice(t: Timing, start: int, down_ms: int, policy: CatchUp) -> None:
    """Firing as a reconciler would (one plan after another): each tick at most once, in order,
    every tick <= now, the next run > now."""
    current, now, fired = t.next_after(start), start, []
    for step in (down_ms, 700, 1500, 60_000):
        now += step
        p = plan(t, current, now, policy)
        assert all(tick <= now for tick in p.ticks)
        assert p.next_run > now or (not p.ticks and p.next_run == current > now)
        assert len(p.ticks) <= MAX_CATCH_UP
        fired += p.ticks
        current = p.next_run
    assert fired == sorted(set(fired))


@pytest.fixture
def client(redis_client: redis.Redis, redis_url: str) -> Iterator[TestClient[Any]]:
    settings = load_settings({"REDIS_URL": redis_url, "EGRESS_ALLOW_CIDRS": "127.0.0.0/8"})
    with TestClient(create_app(settings)) as test_client:
        yield test_client


ECHO = {"type": "echo", "payload": "tick"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"task": ECHO, "cron": "61 * * * *"}, "cron"),
        ({"task": ECHO, "cron": "* * * *"}, "cron"),
        ({"task": ECHO, "cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"task": ECHO, "every": "500ms"}, "every"),
        ({"task": ECHO, "every": "soon"}, "every"),
        ({"task": ECHO}, "cron"),
        ({"task": {"type": "nope", "payload": 1}, "every": "1s"}, "task.type"),
        ({"task": {"url": "ftp://x"}, "every": "1s"}, "task.url"),
        ({"task": {**ECHO, "id": "mine"}, "every": "1s"}, "task.id"),
    ],
)
def test_bad_fields_are_problems(client: TestClient[Any], body: dict[str, Any], field: str) -> None:
    assert_problem(client.post("/api/v1/schedules", json=body), 422, field)
    assert client.get("/api/v1/schedules").json()["items"] == []


def _fire_twice_racing(redis_client: redis.Redis, sid: str, now: int) -> int:
    """Two workers read the schedule and plan the same firing; both apply it."""
    store = ScheduleStore(redis_client, Keys())
    rec = store.read(sid)
    assert rec is not None
    p = plan(Timing(every_ms=rec.every_ms), rec.next_run_at, now, CatchUp.LATEST)
    first = store.fire(sid, rec.next_run_at, p.ticks, p.next_run, now, 20)
    second = store.fire(sid, rec.next_run_at, p.ticks, p.next_run, now, 20)
    assert second is None  # planned from a next run that is no longer current: nothing done
    assert first is not None
    return first[0]


def test_firing_creates_each_tick_once_and_lists_it(
    client: TestClient[Any], redis_client: redis.Redis
) -> None:
    created = client.post("/api/v1/schedules", json={"task": ECHO, "every": "1s"})
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    nxt = int(datetime.fromisoformat(created.json()["next_run_at"].replace("Z", "+00:00")).timestamp() * 1000)
    assert _fire_twice_racing(redis_client, sid, nxt + 10) == 1
    assert fire_due(ScheduleStore(redis_client, Keys()), nxt + 20) == 0  # not due again yet
    shown = client.get(f"/api/v1/schedules/{sid}").json()
    assert shown["last_tasks"] == [f"{sid}@{nxt}"]
    tasks = client.get("/api/v1/tasks", params={"schedule_id": sid}).json()["items"]
    assert [(t["id"], t["schedule_id"], t["status"]) for t in tasks] == [(f"{sid}@{nxt}", sid, "pending")]
    assert redis_client.llen(Keys().queue("default")) == 1  # enqueued as a submit is


def test_pause_delete_and_no_task_after_delete(client: TestClient[Any], redis_client: redis.Redis) -> None:
    sid = client.post("/api/v1/schedules", json={"task": ECHO, "every": "1s"}).json()["id"]
    store = ScheduleStore(redis_client, Keys())
    rec = store.read(sid)
    assert rec is not None
    paused = client.patch(f"/api/v1/schedules/{sid}", json={"paused": True}).json()
    assert paused["paused"] is True and paused["next_run_at"] is None
    assert fire_due(store, rec.next_run_at + 5000) == 0
    assert (
        store.fire(sid, rec.next_run_at, [rec.next_run_at], rec.next_run_at + 1000, rec.next_run_at, 20)
        is None
    )
    client.patch(f"/api/v1/schedules/{sid}", json={"paused": False})
    rec = store.read(sid)
    assert rec is not None and not rec.paused
    assert client.delete(f"/api/v1/schedules/{sid}").status_code == 204
    # A worker that read the schedule before the delete fires after it: nothing is created.
    assert (
        store.fire(sid, rec.next_run_at, [rec.next_run_at], rec.next_run_at + 1000, rec.next_run_at, 20)
        is None
    )
    assert client.get("/api/v1/tasks", params={"schedule_id": sid}).json()["items"] == []
    gone = client.get(f"/api/v1/schedules/{sid}")
    assert gone.status_code == 404 and gone.json()["detail"] == f"no schedule with id {sid!r}"
    assert not [k for k in redis_client.scan_iter("qs:sched*")]


class Recorder:
    """An Observer that keeps what the firing reported (service/observe.py)."""

    def __init__(self) -> None:
        self.fired: list[tuple[str, int, float]] = []

    def attempt_finished(self, *args: object) -> None:
        return

    def recovered(self, count: int) -> None:
        return

    def bulk_acted(self, action: str, count: int) -> None:
        return

    def schedule_fired(self, timing: str, created: int, late_s: float) -> None:
        self.fired.append((timing, created, late_s))

    def schedule_skipped(self, timing: str, ticks: int) -> None:
        return


def test_only_the_worker_that_fired_reports_it(client: TestClient[Any], redis_client: redis.Redis) -> None:
    created = client.post("/api/v1/schedules", json={"task": ECHO, "every": "1s"}).json()
    store = ScheduleStore(redis_client, Keys())
    rec = store.read(created["id"])
    assert rec is not None
    first, second = Recorder(), Recorder()
    assert fire_due(store, rec.next_run_at + 250, first) == 1
    assert fire_due(store, rec.next_run_at + 260, second) == 0  # planned after the move: not due
    assert first.fired == [("every", 1, 0.25)] and second.fired == []


def test_a_client_id_makes_create_idempotent(client: TestClient[Any]) -> None:
    body = {"id": "nightly-report", "task": ECHO, "cron": "0 3 * * *", "timezone": "Europe/Berlin"}
    first = client.post("/api/v1/schedules", json=body)
    assert first.status_code == 201, first.text
    assert first.json()["id"] == "nightly-report"
    assert first.headers["location"] == "/api/v1/schedules/nightly-report"
    client.patch("/api/v1/schedules/nightly-report", json={"paused": True})
    again = client.post("/api/v1/schedules", json=body)  # a redeploy: an operator's pause stays
    assert again.status_code == 200 and again.json()["paused"] is True
    assert again.json()["created_at"] == first.json()["created_at"]
    other = client.post("/api/v1/schedules", json={**body, "cron": "0 4 * * *"})
    assert_problem(other, 409)
    assert other.json()["detail"] == "schedule 'nightly-report' exists with another task or timing"
    assert len(client.get("/api/v1/schedules").json()["items"]) == 1


@pytest.mark.parametrize("sid", ["", "a b", "x@1", "a/b", ".", "x" * 129])
def test_a_bad_client_id_is_a_problem(client: TestClient[Any], sid: str) -> None:
    assert_problem(client.post("/api/v1/schedules", json={"id": sid, "task": ECHO, "every": "1s"}), 422, "id")


@given(st.integers(min_value=1, max_value=400 * 86_400))
@settings(max_examples=200)
def test_a_period_is_shown_as_it_can_be_written_back(seconds: int) -> None:
    """The CLI and the dashboard show `every` as `every_text`: the API reads it back the same."""
    text = every_text(seconds * 1000)
    assert parse_duration_ms(text) == seconds * 1000
    assert text[-1] in "smhd" and text[:-1].isdigit()
