"""Destinations on a real Redis: the per-destination cap, the shared circuit breaker, parking and
release (storage/lua/destinations.lua), through the store's scripts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.domain.destinations import (
    BreakerState,
    DestinationLimits,
    DestinationReport,
    WaitReason,
)
from queue_system.domain.models import AttemptResult, Outcome, TaskStatus
from queue_system.domain.retry import Decision
from queue_system.kinds.webhook import Webhook, destination_of
from queue_system.settings import load_settings
from queue_system.storage.keys import Keys
from queue_system.storage.redis_store import (
    AsyncTaskStore,
    Claim,
    NewTask,
    Skip,
    SkipReason,
    TaskStore,
    breaker_signal,
)
from tests.test_store import finish_with, get, queued_messages

K = Keys()
D = "http://127.0.0.1:9"
LIMITS = DestinationLimits(
    max_inflight=2, breaker_threshold=3, cooldown_ms=1_000, max_cooldown_ms=3_000, hold_ms=5_000
)
UP = AttemptResult(Outcome.SUCCESS, result=1, status_code=200)
DOWN = AttemptResult(Outcome.TRANSIENT, error="HTTP 503", status_code=503)
TIMEOUT = AttemptResult(Outcome.TRANSIENT, error="timeout after 1s")
GONE_404 = AttemptResult(Outcome.PERMANENT, error="HTTP 404", status_code=404)


@pytest.fixture
def store(redis_client: redis.Redis) -> Iterator[TaskStore]:
    store = TaskStore(redis_client, limits=LIMITS)
    yield store
    store.close()


def run_async(redis_url: str, call: object) -> object:
    async def go() -> object:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            return await call(AsyncTaskStore(client))  # type: ignore[operator]
        finally:
            await client.aclose()

    return asyncio.run(go())


def create(redis_url: str, *ids: str, now: int = 1_000, dest: str = D) -> None:
    async def go(s: AsyncTaskStore) -> None:
        for task_id in ids:
            await s.create(
                NewTask(
                    id=task_id,
                    type="webhook",
                    queue="default",
                    payload_json='{"url":"http://127.0.0.1:9/x"}',
                    fingerprint="fp",
                    now=now,
                    extra={"dest": dest},
                )
            )

    run_async(redis_url, go)


def token(client: redis.Redis, task_id: str) -> int:
    return int(client.hget(K.task(task_id), "token"))  # type: ignore[arg-type]


def claim(store: TaskStore, client: redis.Redis, task_id: str, now: int) -> Claim | Skip:
    """Claim with the task's current token (as its current message would)."""
    return store.claim(task_id, token(client, task_id), now, now + 10_000)


def attempt_once(
    store: TaskStore, client: redis.Redis, task_id: str, result: AttemptResult, now: int
) -> None:
    """Claim `task_id` and finish the attempt with `result` (a failure is retried in 100 ms)."""
    claimed = claim(store, client, task_id, now)
    assert isinstance(claimed, Claim), claimed
    status = TaskStatus.COMPLETED if result.outcome is Outcome.SUCCESS else TaskStatus.RETRYING
    if result.outcome is Outcome.PERMANENT:
        status = TaskStatus.FAILED
    decision = Decision(status, now + 100 if status is TaskStatus.RETRYING else None)
    assert finish_with(
        store, task_id, claimed.task.token, decision, result, now=now, dest=claimed.task.dest
    ).recorded


def task_fields(client: redis.Redis, task_id: str) -> dict[str, str]:
    return client.hgetall(K.task(task_id))  # type: ignore[return-value]


def breaker(client: redis.Redis, dest: str = D) -> dict[str, str]:
    return client.hgetall(K.dest(dest))  # type: ignore[return-value]


def parked(client: redis.Redis, dest: str = D) -> list[str]:
    return client.zrange(K.dest_parked(dest), 0, -1)  # type: ignore[return-value]


def in_flight(client: redis.Redis, dest: str = D) -> list[str]:
    return client.zrange(K.dest_inflight(dest), 0, -1)  # type: ignore[return-value]


def queued_ids(client: redis.Redis) -> list[str]:
    return [str(m["args"][0]) + "#" + str(m["args"][1]) for m in queued_messages(client)]  # type: ignore[index]


def open_breaker(store: TaskStore, client: redis.Redis, redis_url: str, now: int = 2_000) -> None:
    """Three transient failures in a row (LIMITS.breaker_threshold) open D's breaker at `now`."""
    create(redis_url, "f1", "f2", "f3")
    for task_id in ("f1", "f2", "f3"):
        attempt_once(store, client, task_id, TIMEOUT, now)


def test_destination_of_is_scheme_host_and_port() -> None:
    assert destination_of(Webhook(url="https://Example.COM/a?b=1")) == "https://example.com:443"
    assert destination_of(Webhook(url="http://example.com:8080")) == "http://example.com:8080"
    assert destination_of(Webhook(url="http://[::1]/x")) == "http://[::1]:80"


def test_breaker_signal_counts_timeouts_connection_errors_and_5xx_not_4xx() -> None:
    assert [breaker_signal(r) for r in (UP, DOWN, TIMEOUT, GONE_404)] == ["up", "down", "down", "up"]
    assert breaker_signal(AttemptResult(Outcome.TRANSIENT, error="HTTP 429", status_code=429)) == "up"
    assert breaker_signal(AttemptResult(Outcome.PERMANENT, error="invalid payload")) == ""


def test_at_the_cap_a_task_is_parked_and_a_freed_slot_dispatches_it(
    store: TaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "a", "b", "c")
    first = claim(store, redis_client, "a", 1_100)
    assert isinstance(first, Claim) and first.task.dest == D  # what the worker hands back to finish
    assert isinstance(claim(store, redis_client, "b", 1_100), Claim)
    redis_client.delete(K.queue("default"))  # the messages above were taken by the worker
    skip = claim(store, redis_client, "c", 1_200)
    assert skip == Skip(SkipReason.PARKED, why="busy")
    # Parked: status and attempts as they were, no lease, no message; its old token is stale.
    raw = task_fields(redis_client, "c")
    assert raw["status"] == "pending" and raw["attempts"] == "0" and raw["parked"] == "busy"
    assert redis_client.zscore(K.leases, "c") is None and token(redis_client, "c") == 2
    assert store.claim("c", 1, 1_300, 9_000) == Skip(SkipReason.STALE)
    assert parked(redis_client) == ["c"] and sorted(in_flight(redis_client)) == ["a", "b"]
    task = get(redis_url, "c")
    assert task is not None and task.waiting is not None
    assert (task.waiting.destination, task.waiting.reason, task.waiting.since) == (D, WaitReason.BUSY, 1_200)
    assert task.waiting.next_probe_at is None

    finish_with(store, "a", 1, Decision(TaskStatus.COMPLETED), UP, now=1_500, dest=D)
    # "a"'s slot went to "c": dispatched at the front of the queue with a new token, its slot held.
    assert queued_ids(redis_client) == ["c#3"] and parked(redis_client) == []
    assert sorted(in_flight(redis_client)) == ["b", "c"]
    assert "parked" not in task_fields(redis_client, "c")
    assert isinstance(store.claim("c", 3, 1_600, 9_000), Claim)  # its slot was kept for it


def test_a_released_task_that_parks_again_gives_back_its_held_slot(
    store: TaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "a", "b", "c")
    assert isinstance(claim(store, redis_client, "a", 1_100), Claim)
    assert isinstance(claim(store, redis_client, "b", 1_100), Claim)
    assert claim(store, redis_client, "c", 1_200) == Skip(SkipReason.PARKED, why="busy")
    finish_with(store, "a", 1, Decision(TaskStatus.COMPLETED), UP, now=1_500, dest=D)  # c: released
    redis_client.hset(K.dest(D), mapping={"state": "open", "open_until": 9_000})  # then it opens
    assert claim(store, redis_client, "c", 1_600) == Skip(SkipReason.PARKED, why="open")
    assert in_flight(redis_client) == ["b"] and parked(redis_client) == ["c"]


def test_the_breaker_opens_after_the_threshold_and_parks_new_tasks(
    store: TaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "f1", "f2", "f3", "f4", "t")
    attempt_once(store, redis_client, "f1", TIMEOUT, 2_000)
    attempt_once(store, redis_client, "f2", DOWN, 2_000)
    attempt_once(store, redis_client, "f3", GONE_404, 2_000)  # a 4xx: the receiver is up
    assert breaker(redis_client)["failures"] == "0"
    attempt_once(store, redis_client, "f4", TIMEOUT, 2_000)
    attempt_once(store, redis_client, "f1", DOWN, 2_100)
    assert breaker(redis_client).get("state") is None  # two in a row: still closed
    attempt_once(store, redis_client, "f2", DOWN, 2_200)
    b = breaker(redis_client)
    assert (b["state"], b["failures"], b["cooldown_ms"], b["open_until"]) == ("open", "3", "1000", "3200")
    assert b["last_error"].startswith("HTTP 503")

    assert claim(store, redis_client, "t", 2_300) == Skip(SkipReason.PARKED, why="open")
    task = get(redis_url, "t")
    assert task is not None and task.waiting is not None and task.waiting.next_probe_at == 3_200
    assert task.attempts == 0 and task.status is TaskStatus.PENDING
    assert redis_client.zscore(K.dests_due, D) == 3_200  # the reconciler looks when it is due


def test_a_task_parked_busy_shows_open_once_the_breaker_opens(
    store: TaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "a", "b", "c")
    for task_id in ("a", "b"):
        assert isinstance(claim(store, redis_client, task_id, 1_100), Claim)
    assert claim(store, redis_client, "c", 1_200) == Skip(SkipReason.PARKED, why="busy")
    redis_client.hset(K.dest(D), mapping={"state": "open", "open_until": 9_000})
    task = get(redis_url, "c")
    assert task is not None and task.waiting is not None
    assert (task.waiting.reason, task.waiting.next_probe_at) == (WaitReason.OPEN, 9_000)


def test_half_open_sends_exactly_one_probe_and_its_success_releases_the_parked(
    store: TaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    open_breaker(store, redis_client, redis_url, now=2_000)  # open until 3000
    create(redis_url, "p1", "p2", "p3", "new")
    for task_id in ("p1", "p2", "p3"):
        assert claim(store, redis_client, task_id, 2_500) == Skip(SkipReason.PARKED, why="open")
    redis_client.delete(K.queue("default"))
    assert store.wake_destinations(2_900) == (0, 0)  # not yet due
    assert store.wake_destinations(3_000) == (1, 1)  # the oldest parked task is the probe
    assert queued_ids(redis_client) == ["p1#3"] and breaker(redis_client)["state"] == "half_open"
    assert store.wake_destinations(3_100) == (0, 0)  # one probe at a time
    assert claim(store, redis_client, "new", 3_100) == Skip(SkipReason.PARKED, why="open")
    probe = claim(store, redis_client, "p1", 3_200)
    assert isinstance(probe, Claim) and probe.task.attempts == 1  # waiting counted no attempt

    finish_with(store, "p1", 3, Decision(TaskStatus.COMPLETED), UP, now=3_300, dest=D)
    b = breaker(redis_client)
    assert (b["state"], b["failures"]) == ("closed", "0") and "cooldown_ms" not in b
    # Closed: the parked tasks go out, up to the free slots (cap 2), oldest first.
    assert queued_ids(redis_client)[:2] == ["p2#3", "p3#3"] and parked(redis_client) == ["new"]
    assert store.wake_destinations(3_400) == (0, 0)  # both slots are held for p2 and p3
    assert isinstance(store.claim("p2", 3, 3_450, 9_000), Claim)  # its held slot
    finish_with(store, "p2", 3, Decision(TaskStatus.COMPLETED), UP, now=3_500, dest=D)
    assert parked(redis_client) == [] and queued_ids(redis_client)[0] == "new#3"


def test_a_failed_probe_reopens_for_longer_up_to_the_bound(
    store: TaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    open_breaker(store, redis_client, redis_url, now=2_000)  # cool-down 1000
    create(redis_url, "p")
    now, expected = 3_000, [2_000, 3_000, 3_000]  # doubling, bounded by max_cooldown_ms
    for cooldown in expected:
        attempt_once(store, redis_client, "p", TIMEOUT, now)  # due: this claim is the probe
        b = breaker(redis_client)
        assert (b["state"], int(b["cooldown_ms"]), int(b["open_until"])) == ("open", cooldown, now + cooldown)
        now += cooldown
    attempt_once(store, redis_client, "p", UP, now)
    assert breaker(redis_client)["state"] == "closed"


def test_a_lost_probe_reopens_the_breaker(
    store: TaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    open_breaker(store, redis_client, redis_url, now=2_000)
    create(redis_url, "p")
    assert isinstance(store.claim("p", 1, 3_000, 4_000), Claim)  # the probe; its worker dies
    assert store.reclaim_expired(4_001, 60_000) == 1
    b = breaker(redis_client)
    assert (b["state"], b["cooldown_ms"], b["open_until"]) == ("open", "2000", "6001")
    assert in_flight(redis_client) == []


def test_a_probe_whose_slot_expired_is_replaced(
    store: TaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    open_breaker(store, redis_client, redis_url, now=2_000)
    create(redis_url, "p1", "p2", "p3")
    assert claim(store, redis_client, "p1", 2_500) == Skip(SkipReason.PARKED, why="open")
    assert store.wake_destinations(3_000) == (1, 1)  # p1's message is lost: its held slot expires
    assert claim(store, redis_client, "p2", 3_000 + LIMITS.hold_ms - 1) == Skip(SkipReason.PARKED, why="open")
    assert isinstance(claim(store, redis_client, "p3", 3_000 + LIMITS.hold_ms + 1), Claim)
    assert breaker(redis_client)["probe"] == "p3"


def test_cancel_and_delete_take_a_parked_task_out_of_its_destination(
    store: TaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    open_breaker(store, redis_client, redis_url)
    create(redis_url, "c", "d")
    for task_id in ("c", "d"):
        assert claim(store, redis_client, task_id, 2_500) == Skip(SkipReason.PARKED, why="open")
    run_async(redis_url, lambda s: s.cancel("c", 2_600, 60_000))
    raw = task_fields(redis_client, "c")
    assert raw["status"] == "cancelled" and "parked" not in raw
    assert run_async(redis_url, lambda s: s.delete("d")) is True
    assert parked(redis_client) == []
    assert store.wake_destinations(10_000) == (0, 0)


def test_the_stranded_walk_leaves_parked_tasks_alone(
    store: TaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    open_breaker(store, redis_client, redis_url)
    create(redis_url, "w")
    assert claim(store, redis_client, "w", 2_500) == Skip(SkipReason.PARKED, why="open")
    redis_client.delete(K.queue("default"), K.messages("default"))
    assert store.redispatch_stranded(TaskStatus.PENDING, 0, 10**7, 0) == (1, 0)


def test_renew_keeps_the_slot_as_long_as_the_lease(
    store: TaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "r")
    assert isinstance(store.claim("r", 1, 1_100, 5_000), Claim)
    assert store.renew_leases(20_000, [("r", 1)]) == 1
    assert redis_client.zscore(K.dest_inflight(D), "r") == 20_000


def test_expired_slots_do_not_count_against_the_cap(
    store: TaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "a", "b", "c")
    assert isinstance(store.claim("a", 1, 1_100, 2_000), Claim)
    assert isinstance(store.claim("b", 1, 1_100, 2_000), Claim)
    assert isinstance(store.claim("c", 1, 2_001, 9_000), Claim)  # a's and b's leases expired
    assert in_flight(redis_client) == ["c"]


def test_waiting_does_not_burn_retries_and_destinations_are_listed(
    store: TaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    open_breaker(store, redis_client, redis_url, now=2_000)
    create(redis_url, "x", "y")
    create(redis_url, "ok", dest="http://other:80")
    for _ in range(3):  # claimed again and again while open: parked each time, no attempt
        assert claim(store, redis_client, "x", 2_500) == Skip(SkipReason.PARKED, why="open")
        redis_client.hdel(K.task("x"), "parked")
        redis_client.zrem(K.dest_parked(D), "x")
    assert claim(store, redis_client, "y", 2_500) == Skip(SkipReason.PARKED, why="open")
    assert isinstance(claim(store, redis_client, "ok", 2_600), Claim)
    x = get(redis_url, "x")
    assert x is not None and x.attempts == 0
    report = run_async(redis_url, lambda s: s.destinations(2_700, 10))
    assert isinstance(report, DestinationReport)
    assert (report.known, report.open, report.parked) == (2, 1, 1)
    by_name = {d.destination: d for d in report.destinations}
    down, other = by_name[D], by_name["http://other:80"]
    assert (down.state, down.failures, down.parked, down.in_flight) == (BreakerState.OPEN, 3, 1, 0)
    assert down.next_probe_at == 3_000 and down.cooldown_ms == 1_000
    assert (other.state, other.in_flight, other.next_probe_at) == (BreakerState.CLOSED, 1, None)


def test_finish_counts_attempts_per_minute(
    store: TaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "m1", "m2")
    attempt_once(store, redis_client, "m1", UP, 120_000)
    attempt_once(store, redis_client, "m2", DOWN, 121_000)
    attempt_once(store, redis_client, "m2", GONE_404, 185_000)
    assert redis_client.hgetall(K.stats_minute(2)) == {"completed": "1", "retried": "1"}
    assert redis_client.hgetall(K.stats_minute(3)) == {"failed": "1"}
    assert 0 < int(redis_client.pttl(K.stats_minute(2))) <= 7_200_000  # type: ignore[arg-type]


def test_an_idle_destination_is_forgotten(
    store: TaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    open_breaker(store, redis_client, redis_url, now=2_000)
    week = 7 * 86_400_000
    store.wake_destinations(2_000 + week - 1)
    assert redis_client.exists(K.dest(D)) == 1
    store.wake_destinations(2_000 + week + 1)
    assert redis_client.exists(K.dest(D), K.dest_inflight(D), K.dest_parked(D)) == 0
    assert redis_client.zscore(K.dests, D) is None


def test_every_destination_key_is_owned_or_expires(
    store: TaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    open_breaker(store, redis_client, redis_url)
    create(redis_url, "k")
    claim(store, redis_client, "k", 2_500)
    owned = set(redis_client.zrange(K.dests, 0, -1))  # type: ignore[arg-type]
    for key in redis_client.keys(f"{K.prefix}:*"):  # type: ignore[union-attr]
        family, d = K.parse(key) or ("", "")
        if family in ("dest", "inflight", "parked"):
            assert d in owned, key
    for key in redis_client.keys(f"{K.prefix}:stats:*"):  # type: ignore[union-attr]
        assert int(redis_client.pttl(key)) > 0  # type: ignore[arg-type]


def test_the_api_lists_destinations_and_names_a_bad_limit(
    store: TaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    open_breaker(store, redis_client, redis_url, now=2_000)
    with TestClient(create_app(load_settings({"REDIS_URL": redis_url}))) as api:
        body = api.get("/api/v1/destinations").json()
        assert (body["known"], body["open"], body["parked"]) == (1, 1, 0)
        [row] = body["items"]
        assert row["destination"] == D and row["state"] == "open" and row["failures"] == 3
        assert row["next_probe_at"] == "1970-01-01T00:00:03.000Z" and row["cooldown_ms"] == 1_000
        assert api.get("/api/v1/stats").json()["destinations"] == {"known": 1, "open": 1, "parked": 0}
        bad = api.get("/api/v1/destinations", params={"limit": 0})
        assert 400 <= bad.status_code < 500 and bad.json()["field"] == "limit", bad.text
