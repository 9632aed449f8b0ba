"""Destinations on a real Redis, at both levels (domain/destinations.py): the host's cap and breaker,
the endpoint's bound and breaker, parking and release (storage/lua/destinations.lua), through the
store's scripts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.cli import render as cli_render
from queue_system.config.settings import load_settings
from queue_system.domain.breaker import breaker_signal
from queue_system.domain.destinations import (
    BreakerState,
    DestinationLimits,
    DestinationReport,
    Signal,
    WaitLevel,
    WaitReason,
    host_of,
)
from queue_system.domain.models import AttemptResult, Outcome, TaskStatus
from queue_system.domain.retry import Decision
from queue_system.kinds.webhook import Webhook, destination_of, endpoint_of
from queue_system.storage.keys import Keys
from queue_system.storage.types import Claim, Skip, SkipReason
from queue_system.storage.worker_store import RedisTaskStore
from tests.support.destinations import E2, D, E, create, run_async
from tests.support.store import finish_with, get, queued_messages

K = Keys()
# Host cap 3, endpoint bound 2: one endpoint can never take all of its host's slots.
LIMITS = DestinationLimits(
    max_inflight=3,
    breaker_threshold=3,
    cooldown_ms=1_000,
    max_cooldown_ms=3_000,
    hold_ms=5_000,
    max_inflight_per_endpoint=2,
)
UP = AttemptResult(Outcome.SUCCESS, result=1, status_code=200)
DOWN = AttemptResult(Outcome.TRANSIENT, error="HTTP 503", status_code=503)
TIMEOUT = AttemptResult(Outcome.TRANSIENT, error="timeout after 1s")
REFUSED = AttemptResult(Outcome.TRANSIENT, error="ConnectError: refused", connect_failed=True)
GONE_404 = AttemptResult(Outcome.PERMANENT, error="HTTP 404", status_code=404)


@pytest.fixture
def store(redis_client: redis.Redis) -> Iterator[RedisTaskStore]:
    store = RedisTaskStore(redis_client, limits=LIMITS)
    yield store
    store.close()


def token(client: redis.Redis, task_id: str) -> int:
    return int(client.hget(K.task(task_id), "token"))  # type: ignore[arg-type]


def claim(store: RedisTaskStore, client: redis.Redis, task_id: str, now: int) -> Claim | Skip:
    """Claim with the task's current token (as its current message would)."""
    return store.claim(task_id, token(client, task_id), now, now + 10_000)


def attempt_once(
    store: RedisTaskStore, client: redis.Redis, task_id: str, result: AttemptResult, now: int
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


def breaker(client: redis.Redis, endpoint: str = E) -> dict[str, str]:
    return client.hgetall(K.endpoint(endpoint))  # type: ignore[return-value]


def host_breaker(client: redis.Redis, dest: str = D) -> dict[str, str]:
    return client.hgetall(K.dest(dest))  # type: ignore[return-value]


def parked(client: redis.Redis, endpoint: str = E) -> list[str]:
    return client.zrange(K.endpoint_parked(endpoint), 0, -1)  # type: ignore[return-value]


def host_parked(client: redis.Redis, dest: str = D) -> list[str]:
    return client.zrange(K.dest_parked(dest), 0, -1)  # type: ignore[return-value]


def in_flight(client: redis.Redis, endpoint: str = E) -> list[str]:
    return sorted(client.zrange(K.endpoint_inflight(endpoint), 0, -1))  # type: ignore[arg-type]


def host_in_flight(client: redis.Redis, dest: str = D) -> list[str]:
    return sorted(client.zrange(K.dest_inflight(dest), 0, -1))  # type: ignore[arg-type]


def queued_ids(client: redis.Redis) -> list[str]:
    return [str(m["args"][0]) + "#" + str(m["args"][1]) for m in queued_messages(client)]  # type: ignore[index]


def open_breaker(store: RedisTaskStore, client: redis.Redis, redis_url: str, now: int = 2_000) -> None:
    """Three response timeouts in a row (LIMITS.breaker_threshold) open E's breaker at `now`."""
    create(redis_url, "f1", "f2", "f3")
    for task_id in ("f1", "f2", "f3"):
        attempt_once(store, client, task_id, TIMEOUT, now)


def open_host(store: RedisTaskStore, client: redis.Redis, redis_url: str, now: int = 2_000) -> None:
    """Three refused connections in a row, to three endpoints of D, open D's host breaker."""
    for i in (1, 2, 3):
        create(redis_url, f"h{i}", endpoint=f"{D}/h{i}")
        attempt_once(store, client, f"h{i}", REFUSED, now)


def test_destination_of_is_scheme_host_and_port_and_endpoint_of_adds_the_path() -> None:
    assert destination_of(Webhook(url="https://Example.COM/a?b=1")) == "https://example.com:443"
    assert destination_of(Webhook(url="http://example.com:8080")) == "http://example.com:8080"
    assert destination_of(Webhook(url="http://[::1]/x")) == "http://[::1]:80"
    assert destination_of(Webhook(url="https://BÜcher.de/x")) == "https://xn--bcher-kva.de:443"  # IDNA
    assert endpoint_of(Webhook(url="HTTPS://Example.COM:443/A/b?token=1#f")) == "https://example.com:443/A/b"
    assert endpoint_of(Webhook(url="http://example.com:8080")) == "http://example.com:8080/"
    assert endpoint_of(Webhook(url="http://h/a b")) == "http://h:80/a%20b"  # as the clients send it
    assert endpoint_of(Webhook(url="https://h/x", endpoint="customer-42")) == "https://h:443#customer-42"
    for url in ("https://Example.COM/a?b=1", "http://[::1]/x", "https://BÜcher.de/x"):
        hook = Webhook(url=url)
        assert host_of(endpoint_of(hook)) == destination_of(hook) == host_of(destination_of(hook))
    assert host_of("https://h:443#a/b") == "https://h:443"


def test_breaker_signal_tells_the_endpoints_failures_from_the_hosts() -> None:
    signals = [breaker_signal(r) for r in (UP, DOWN, TIMEOUT, REFUSED, GONE_404)]
    assert signals == [Signal.UP, Signal.ENDPOINT_DOWN, Signal.ENDPOINT_DOWN, Signal.HOST_DOWN, Signal.UP]
    assert breaker_signal(AttemptResult(Outcome.TRANSIENT, error="HTTP 429", status_code=429)) is Signal.UP
    assert breaker_signal(AttemptResult(Outcome.PERMANENT, error="invalid payload")) is Signal.NONE
    never_sent = AttemptResult(Outcome.PERMANENT, error="x", connect_failed=True, about_destination=False)
    assert breaker_signal(never_sent) is Signal.NONE


def test_at_the_endpoint_bound_a_task_is_parked_under_the_endpoint_and_a_freed_slot_dispatches_it(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "a", "b", "c")
    first = claim(store, redis_client, "a", 1_100)
    assert isinstance(first, Claim) and (first.task.dest, first.task.endpoint) == (D, E)
    assert isinstance(claim(store, redis_client, "b", 1_100), Claim)
    redis_client.delete(K.queue("default"))  # the messages above were taken by the worker
    skip = claim(store, redis_client, "c", 1_200)
    assert skip == Skip(SkipReason.PARKED, why="busy", level="endpoint")  # the host has a slot left
    # Parked: status and attempts as they were, no lease, no message; its old token is stale.
    raw = task_fields(redis_client, "c")
    assert raw["status"] == "pending" and raw["attempts"] == "0" and raw["parked"] == "busy"
    assert raw["parked_level"] == "endpoint"
    assert redis_client.zscore(K.leases, "c") is None and token(redis_client, "c") == 2
    assert store.claim("c", 1, 1_300, 9_000) == Skip(SkipReason.STALE)
    assert parked(redis_client) == ["c"] and in_flight(redis_client) == ["a", "b"]
    assert host_parked(redis_client) == [] and host_in_flight(redis_client) == ["a", "b"]
    task = get(redis_url, "c")
    assert task is not None and task.waiting is not None
    w = task.waiting
    assert (w.destination, w.endpoint, w.level, w.reason, w.since) == (
        D,
        E,
        WaitLevel.ENDPOINT,
        WaitReason.BUSY,
        1_200,
    )
    assert w.next_probe_at is None

    finish_with(store, "a", 1, Decision(TaskStatus.COMPLETED), UP, now=1_500, dest=D)
    # "a"'s slot went to "c": dispatched at the front of the queue with a new token, its slots held.
    assert queued_ids(redis_client) == ["c#3"] and parked(redis_client) == []
    assert in_flight(redis_client) == ["b", "c"] and host_in_flight(redis_client) == ["b", "c"]
    assert "parked" not in task_fields(redis_client, "c")
    assert isinstance(store.claim("c", 3, 1_600, 9_000), Claim)  # its slot was kept for it


def test_a_hanging_endpoint_leaves_its_hosts_other_slots_to_the_other_endpoints(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "a", "b", "c", "d")  # E: a backlog that holds its slots
    create(redis_url, "ok1", "ok2", endpoint=E2)
    for task_id in ("a", "b"):
        assert isinstance(claim(store, redis_client, task_id, 1_100), Claim)
    for task_id in ("c", "d"):
        assert claim(store, redis_client, task_id, 1_100) == Skip(
            SkipReason.PARKED, why="busy", level="endpoint"
        )
    assert isinstance(claim(store, redis_client, "ok1", 1_200), Claim)  # the host's third slot
    # The host is at its cap now: another endpoint's task waits for the host, not for E.
    assert claim(store, redis_client, "ok2", 1_200) == Skip(SkipReason.PARKED, why="busy", level="host")
    assert host_parked(redis_client) == ["ok2"] and parked(redis_client, E2) == []
    redis_client.delete(K.queue("default"))
    finish_with(store, "ok1", 1, Decision(TaskStatus.COMPLETED), UP, now=1_300, dest=D)
    assert queued_ids(redis_client) == ["ok2#3"]  # the host's freed slot: to the host's waiter
    assert parked(redis_client) == ["c", "d"]  # E is still at its bound


def test_a_released_task_that_parks_again_gives_back_its_held_slots(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "a", "b", "c")
    assert isinstance(claim(store, redis_client, "a", 1_100), Claim)
    assert isinstance(claim(store, redis_client, "b", 1_100), Claim)
    assert claim(store, redis_client, "c", 1_200) == Skip(SkipReason.PARKED, why="busy", level="endpoint")
    finish_with(store, "a", 1, Decision(TaskStatus.COMPLETED), UP, now=1_500, dest=D)  # c: released
    redis_client.hset(K.endpoint(E), mapping={"state": "open", "open_until": 9_000})  # then E opens
    assert claim(store, redis_client, "c", 1_600) == Skip(SkipReason.PARKED, why="open", level="endpoint")
    assert in_flight(redis_client) == ["b"] and host_in_flight(redis_client) == ["b"]
    assert parked(redis_client) == ["c"]


def test_an_endpoints_failures_open_its_own_breaker_only(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "f1", "f2", "f3", "f4", "t")
    create(redis_url, "other", endpoint=E2)
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
    assert host_breaker(redis_client).get("state", "closed") == "closed"  # the host answered
    assert host_breaker(redis_client).get("failures", "0") == "0"

    assert claim(store, redis_client, "t", 2_300) == Skip(SkipReason.PARKED, why="open", level="endpoint")
    task = get(redis_url, "t")
    assert task is not None and task.waiting is not None and task.waiting.next_probe_at == 3_200
    assert task.waiting.level is WaitLevel.ENDPOINT and task.waiting.endpoint == E
    assert task.attempts == 0 and task.status is TaskStatus.PENDING
    assert redis_client.zscore(K.endpoints_due, E) == 3_200  # the reconciler looks when it is due
    assert redis_client.zscore(K.dests_due, D) is None
    # Another endpoint of the same host is not held.
    assert isinstance(claim(store, redis_client, "other", 2_300), Claim)


def test_host_level_failures_open_the_hosts_breaker_for_every_endpoint(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "x1", endpoint=f"{D}/a")
    attempt_once(store, redis_client, "x1", REFUSED, 1_500)
    attempt_once(store, redis_client, "x1", DOWN, 1_600)  # a 5xx: the host answered; its streak ends
    assert host_breaker(redis_client)["failures"] == "0"
    open_host(store, redis_client, redis_url, now=2_000)
    b = host_breaker(redis_client)
    assert (b["state"], b["failures"], b["open_until"]) == ("open", "3", "3000")
    for i in (1, 2, 3):  # a connect failure says nothing of the endpoint
        assert breaker(redis_client, f"{D}/h{i}").get("failures", "0") == "0"
    create(redis_url, "t1", "t2")
    create(redis_url, "u", endpoint=E2)
    for task_id in ("t1", "t2", "u"):
        assert claim(store, redis_client, task_id, 2_500) == Skip(SkipReason.PARKED, why="open", level="host")
    assert host_parked(redis_client) == ["t1", "t2", "u"]
    task = get(redis_url, "u")
    assert task is not None and task.waiting is not None
    assert (task.waiting.level, task.waiting.reason, task.waiting.next_probe_at) == (
        WaitLevel.HOST,
        WaitReason.OPEN,
        3_000,
    )
    # Due: any of its parked tasks is the host's probe; its answer closes the host, and the rest go.
    redis_client.delete(K.queue("default"))
    assert store.wake_destinations(3_000) == (1, 1)
    assert queued_ids(redis_client) == ["t1#3"] and host_breaker(redis_client)["state"] == "half_open"
    probe = claim(store, redis_client, "t1", 3_100)
    assert isinstance(probe, Claim)
    finish_with(store, "t1", probe.task.token, Decision(TaskStatus.COMPLETED), UP, now=3_200, dest=D)
    assert host_breaker(redis_client)["state"] == "closed" and host_parked(redis_client) == []
    assert queued_ids(redis_client)[:2] == ["t2#3", "u#3"]


def test_a_failed_host_probe_reopens_the_host_for_longer(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    open_host(store, redis_client, redis_url, now=2_000)  # cool-down 1000
    create(redis_url, "p", endpoint=E2)
    now = 3_000
    for cooldown in (2_000, 3_000, 3_000):  # doubling, bounded by max_cooldown_ms
        attempt_once(store, redis_client, "p", REFUSED, now)  # due: this claim is the probe
        b = host_breaker(redis_client)
        assert (b["state"], int(b["cooldown_ms"]), int(b["open_until"])) == ("open", cooldown, now + cooldown)
        now += cooldown
    attempt_once(store, redis_client, "p", DOWN, now)  # an answer, even a 5xx: the host is up
    assert host_breaker(redis_client)["state"] == "closed"
    assert breaker(redis_client, E2)["failures"] == "1"  # and the 5xx is the endpoint's


def test_a_task_parked_busy_shows_open_once_the_breaker_opens(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "a", "b", "c")
    for task_id in ("a", "b"):
        assert isinstance(claim(store, redis_client, task_id, 1_100), Claim)
    assert claim(store, redis_client, "c", 1_200) == Skip(SkipReason.PARKED, why="busy", level="endpoint")
    redis_client.hset(K.endpoint(E), mapping={"state": "open", "open_until": 9_000})
    task = get(redis_url, "c")
    assert task is not None and task.waiting is not None
    assert (task.waiting.reason, task.waiting.next_probe_at) == (WaitReason.OPEN, 9_000)


def test_half_open_sends_exactly_one_probe_of_its_own_and_its_success_releases_the_parked(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    open_breaker(store, redis_client, redis_url, now=2_000)  # open until 3000
    create(redis_url, "p1", "p2", "p3", "new")
    create(redis_url, "elsewhere", endpoint=E2)
    for task_id in ("p1", "p2", "p3"):
        assert claim(store, redis_client, task_id, 2_500) == Skip(
            SkipReason.PARKED, why="open", level="endpoint"
        )
    redis_client.delete(K.queue("default"))
    assert store.wake_destinations(2_900) == (0, 0)  # not yet due
    assert store.wake_destinations(3_000) == (1, 1)  # the oldest parked task is the probe
    assert queued_ids(redis_client) == ["p1#3"] and breaker(redis_client)["state"] == "half_open"
    assert store.wake_destinations(3_100) == (0, 0)  # one probe at a time
    assert claim(store, redis_client, "new", 3_100) == Skip(SkipReason.PARKED, why="open", level="endpoint")
    # Another endpoint's task is never E's probe: it goes out as itself.
    elsewhere = claim(store, redis_client, "elsewhere", 3_100)
    assert isinstance(elsewhere, Claim) and breaker(redis_client)["probe"] == "p1"
    probe = claim(store, redis_client, "p1", 3_200)
    assert isinstance(probe, Claim) and probe.task.attempts == 1  # waiting counted no attempt

    finish_with(store, "p1", 3, Decision(TaskStatus.COMPLETED), UP, now=3_300, dest=D)
    b = breaker(redis_client)
    assert (b["state"], b["failures"]) == ("closed", "0") and "cooldown_ms" not in b
    # Closed: the parked tasks go out, up to the free slots (bound 2), oldest first.
    assert queued_ids(redis_client)[:2] == ["p2#3", "p3#3"] and parked(redis_client) == ["new"]
    assert store.wake_destinations(3_400) == (0, 0)  # both slots are held for p2 and p3
    assert isinstance(store.claim("p2", 3, 3_450, 9_000), Claim)  # its held slot
    finish_with(store, "p2", 3, Decision(TaskStatus.COMPLETED), UP, now=3_500, dest=D)
    assert parked(redis_client) == [] and queued_ids(redis_client)[0] == "new#3"


def test_a_failed_probe_reopens_for_longer_up_to_the_bound(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
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
    assert host_breaker(redis_client).get("state", "closed") == "closed"


def test_a_lost_probe_reopens_the_breaker(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    open_breaker(store, redis_client, redis_url, now=2_000)
    create(redis_url, "p")
    assert isinstance(store.claim("p", 1, 3_000, 4_000), Claim)  # the probe; its worker dies
    assert store.reclaim_expired(4_001, 60_000) == 1
    b = breaker(redis_client)
    assert (b["state"], b["cooldown_ms"], b["open_until"]) == ("open", "2000", "6001")
    assert in_flight(redis_client) == [] and host_in_flight(redis_client) == []
    assert host_breaker(redis_client).get("state", "closed") == "closed"


def test_a_probe_whose_slot_expired_is_replaced(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    open_breaker(store, redis_client, redis_url, now=2_000)
    create(redis_url, "p1", "p2", "p3")
    assert claim(store, redis_client, "p1", 2_500) == Skip(SkipReason.PARKED, why="open", level="endpoint")
    assert store.wake_destinations(3_000) == (1, 1)  # p1's message is lost: its held slot expires
    too_soon = claim(store, redis_client, "p2", 3_000 + LIMITS.hold_ms - 1)
    assert too_soon == Skip(SkipReason.PARKED, why="open", level="endpoint")
    assert isinstance(claim(store, redis_client, "p3", 3_000 + LIMITS.hold_ms + 1), Claim)
    assert breaker(redis_client)["probe"] == "p3"


def test_cancel_delete_and_unclaim_take_a_task_out_of_both_levels(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    open_breaker(store, redis_client, redis_url)
    create(redis_url, "c", "d")
    for task_id in ("c", "d"):
        assert claim(store, redis_client, task_id, 2_500) == Skip(
            SkipReason.PARKED, why="open", level="endpoint"
        )
    open_host(store, redis_client, redis_url, now=2_500)
    create(redis_url, "hc", "hd", endpoint=E2)
    for task_id in ("hc", "hd"):
        assert claim(store, redis_client, task_id, 2_600) == Skip(SkipReason.PARKED, why="open", level="host")
    for task_id in ("c", "hc"):
        run_async(redis_url, lambda s, t=task_id: s.cancel(t, 2_700, 60_000))
        raw = task_fields(redis_client, task_id)
        assert raw["status"] == "cancelled" and "parked" not in raw and "parked_level" not in raw
    for task_id in ("d", "hd"):
        assert run_async(redis_url, lambda s, t=task_id: s.delete(t)) is True
    assert parked(redis_client) == [] and host_parked(redis_client) == []
    assert store.wake_destinations(10_000) == (0, 0)
    # A claim given back (unclaim) frees its slot at both levels.
    create(redis_url, "g", endpoint=E2)
    redis_client.delete(K.dest(D))
    got = claim(store, redis_client, "g", 20_000)
    assert (
        isinstance(got, Claim)
        and in_flight(redis_client, E2) == ["g"]
        and host_in_flight(redis_client) == ["g"]
    )
    assert store.unclaim(got.task, 20_100).undone
    assert in_flight(redis_client, E2) == [] and host_in_flight(redis_client) == []


def test_the_stranded_walk_leaves_parked_tasks_alone(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    open_breaker(store, redis_client, redis_url)
    create(redis_url, "w")
    assert claim(store, redis_client, "w", 2_500) == Skip(SkipReason.PARKED, why="open", level="endpoint")
    redis_client.delete(K.queue("default"), K.messages("default"))
    assert store.redispatch_stranded(TaskStatus.PENDING, 0, 10**7, 0) == (1, 0)


def test_renew_keeps_both_slots_as_long_as_the_lease(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "r")
    assert isinstance(store.claim("r", 1, 1_100, 5_000), Claim)
    assert store.renew_leases(20_000, [("r", 1)]) == 1
    assert redis_client.zscore(K.dest_inflight(D), "r") == 20_000
    assert redis_client.zscore(K.endpoint_inflight(E), "r") == 20_000


def test_expired_slots_do_not_count_against_the_caps(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "a", "b", "c")
    assert isinstance(store.claim("a", 1, 1_100, 2_000), Claim)
    assert isinstance(store.claim("b", 1, 1_100, 2_000), Claim)
    assert isinstance(store.claim("c", 1, 2_001, 9_000), Claim)  # a's and b's leases expired
    assert in_flight(redis_client) == ["c"]


def test_a_task_stored_before_endpoints_has_its_host_as_its_endpoint(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "old1", "old2", "old3", "old4", endpoint=None)
    for task_id in ("old1", "old2", "old3"):
        attempt_once(store, redis_client, task_id, TIMEOUT, 2_000)
    assert breaker(redis_client, D)["state"] == "open"  # the endpoint breaker named by its host
    assert host_breaker(redis_client).get("state", "closed") == "closed"
    assert claim(store, redis_client, "old4", 2_100) == Skip(SkipReason.PARKED, why="open", level="endpoint")
    # A task parked by the version before (under its host, no level) still reads and wakes.
    redis_client.hdel(K.task("old4"), "parked_level")
    redis_client.zrem(K.endpoint_parked(D), "old4")
    redis_client.zadd(K.dest_parked(D), {"old4": 2_100})
    redis_client.zadd(K.dests_due, {D: 2_100})
    task = get(redis_url, "old4")
    assert task is not None and task.waiting is not None and task.waiting.level is WaitLevel.HOST
    redis_client.delete(K.queue("default"))
    assert store.wake_destinations(2_200) == (1, 0)  # the host is closed: it goes out
    assert queued_ids(redis_client) == ["old4#3"]


def test_waiting_does_not_burn_retries_and_both_levels_are_listed(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    open_breaker(store, redis_client, redis_url, now=2_000)
    create(redis_url, "x", "y")
    create(redis_url, "ok", dest="http://other:80", endpoint="http://other:80/")
    for _ in range(3):  # claimed again and again while open: parked each time, no attempt
        assert claim(store, redis_client, "x", 2_500) == Skip(SkipReason.PARKED, why="open", level="endpoint")
        redis_client.hdel(K.task("x"), "parked")
        redis_client.zrem(K.endpoint_parked(E), "x")
    assert claim(store, redis_client, "y", 2_500) == Skip(SkipReason.PARKED, why="open", level="endpoint")
    assert isinstance(claim(store, redis_client, "ok", 2_600), Claim)
    x = get(redis_url, "x")
    assert x is not None and x.attempts == 0
    report = run_async(redis_url, lambda s: s.destinations(2_700, 10))
    assert isinstance(report, DestinationReport)
    assert (report.known, report.open, report.parked) == (2, 0, 1)
    assert (report.known_endpoints, report.open_endpoints) == (2, 1)
    hosts = {d.destination: d for d in report.destinations}
    assert (hosts[D].state, hosts[D].failures, hosts[D].in_flight) == (BreakerState.CLOSED, 0, 0)
    assert (hosts["http://other:80"].state, hosts["http://other:80"].in_flight) == (BreakerState.CLOSED, 1)
    endpoints = {d.destination: d for d in report.endpoints}
    down = endpoints[E]
    assert (down.level, down.state, down.failures, down.parked, down.in_flight) == (
        WaitLevel.ENDPOINT,
        BreakerState.OPEN,
        3,
        1,
        0,
    )
    assert down.next_probe_at == 3_000 and down.cooldown_ms == 1_000
    assert endpoints["http://other:80/"].in_flight == 1


def test_finish_counts_attempts_per_minute(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "m1", "m2")
    attempt_once(store, redis_client, "m1", UP, 120_000)
    attempt_once(store, redis_client, "m2", DOWN, 121_000)
    attempt_once(store, redis_client, "m2", GONE_404, 185_000)
    assert redis_client.hgetall(K.stats_minute(2)) == {"completed": "1", "retried": "1"}
    assert redis_client.hgetall(K.stats_minute(3)) == {"failed": "1"}
    assert 0 < int(redis_client.pttl(K.stats_minute(2))) <= 7_200_000  # type: ignore[arg-type]


def test_idle_hosts_and_endpoints_are_forgotten(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    open_breaker(store, redis_client, redis_url, now=2_000)
    open_host(store, redis_client, redis_url, now=2_000)
    hour, week = 3_600_000, 7 * 86_400_000
    store.wake_destinations(2_000 + hour - 1)
    assert redis_client.exists(K.endpoint(E)) == 1
    store.wake_destinations(2_000 + hour + 1)
    assert redis_client.exists(K.endpoint(E), K.endpoint_inflight(E), K.endpoint_parked(E)) == 0
    assert redis_client.zscore(K.endpoints, E) is None and redis_client.exists(K.dest(D)) == 1
    store.wake_destinations(2_000 + week + 1)
    assert redis_client.exists(K.dest(D), K.dest_inflight(D), K.dest_parked(D)) == 0
    assert redis_client.zscore(K.dests, D) is None


def test_a_healthy_endpoint_is_forgotten_when_its_last_attempt_ends(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "a", "b")
    create(redis_url, "c", endpoint=E2)
    for task_id in ("a", "b", "c"):
        assert isinstance(claim(store, redis_client, task_id, 1_100), Claim)
    assert set(redis_client.zrange(K.endpoints, 0, -1)) == {E, E2}  # type: ignore[arg-type]
    finish_with(store, "a", 1, Decision(TaskStatus.COMPLETED), UP, now=1_200, dest=D)
    assert redis_client.zscore(K.endpoints, E) is not None  # b is still in flight
    finish_with(store, "b", 1, Decision(TaskStatus.COMPLETED), UP, now=1_300, dest=D)
    finish_with(store, "c", 1, Decision(TaskStatus.RETRYING, 2_000), DOWN, now=1_300, dest=D)
    assert redis_client.zrange(K.endpoints, 0, -1) == [E2]  # E2 keeps its failure, and its owner
    assert redis_client.exists(K.endpoint(E), K.endpoint_inflight(E)) == 0
    assert redis_client.zscore(K.dests, D) is not None  # hosts are few: kept for 7 days


def test_every_destination_key_is_owned_or_expires(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    open_breaker(store, redis_client, redis_url)
    create(redis_url, "k")
    assert claim(store, redis_client, "k", 2_100) == Skip(SkipReason.PARKED, why="open", level="endpoint")
    open_host(store, redis_client, redis_url, now=2_200)
    create(redis_url, "k2", endpoint=E2)
    assert claim(store, redis_client, "k2", 2_500) == Skip(SkipReason.PARKED, why="open", level="host")
    hosts = set(redis_client.zrange(K.dests, 0, -1))  # type: ignore[arg-type]
    endpoints = set(redis_client.zrange(K.endpoints, 0, -1))  # type: ignore[arg-type]
    seen = set()
    for key in redis_client.keys(f"{K.prefix}:*"):  # type: ignore[union-attr]
        family, d = K.parse(key) or ("", "")
        seen.add(family)
        if family in ("dest", "inflight", "parked"):
            assert d in hosts, key
        if family in ("endpoint", "ep_inflight", "ep_parked"):
            assert d in endpoints, key
    assert {"dest", "parked", "endpoint", "ep_parked"} <= seen
    for key in redis_client.keys(f"{K.prefix}:stats:*"):  # type: ignore[union-attr]
        assert int(redis_client.pttl(key)) > 0  # type: ignore[arg-type]


def test_the_api_lists_both_levels_redacted_and_names_a_bad_limit(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    open_breaker(store, redis_client, redis_url, now=2_000)
    redis_client.hset(K.endpoint(E), "last_error", "HTTP 503 from http://u:hunter2@h/x?token=abc")
    with TestClient(create_app(load_settings({"REDIS_URL": redis_url}))) as api:
        body = api.get("/api/v1/destinations").json()
        assert (body["known"], body["open"], body["parked"]) == (1, 0, 0)
        assert (body["endpoints_known"], body["endpoints_open"]) == (1, 1)
        [host] = body["items"]
        assert (host["destination"], host["level"], host["state"]) == (D, "host", "closed")
        [row] = body["endpoints"]
        assert row["destination"] == E and row["level"] == "endpoint" and row["state"] == "open"
        assert row["failures"] == 3
        assert row["next_probe_at"] == "1970-01-01T00:00:03.000Z" and row["cooldown_ms"] == 1_000
        assert "hunter2" not in row["last_error"] and "abc" not in row["last_error"]
        summary = api.get("/api/v1/stats").json()["destinations"]
        assert summary == {"known": 1, "open": 0, "parked": 0, "endpoints_known": 1, "endpoints_open": 1}
        bad = api.get("/api/v1/destinations", params={"limit": 0})
        assert 400 <= bad.status_code < 500 and bad.json()["field"] == "limit", bad.text
        # A parked task's GET says which level it waits for.
        create(redis_url, "w")
        assert claim(store, redis_client, "w", 2_500) == Skip(SkipReason.PARKED, why="open", level="endpoint")
        waiting = api.get("/api/v1/tasks/w").json()["waiting"]
        assert waiting == {
            "destination": D,
            "reason": "open",
            "since": "1970-01-01T00:00:02.500Z",
            "next_probe_at": "1970-01-01T00:00:03.000Z",
            "level": "endpoint",
            "endpoint": E,
        }


def test_an_endpoint_key_is_checked_and_names_the_field(redis_url: str, redis_client: redis.Redis) -> None:
    with TestClient(
        create_app(load_settings({"REDIS_URL": redis_url, "EGRESS_ALLOW_CIDRS": "127.0.0.0/8"}))
    ) as api:
        for bad in ("", "x" * 201, "a b", "a/b", "a#b", "a\n", 42):
            answer = api.post("/api/v1/tasks", json={"url": "http://127.0.0.1:9/h", "endpoint": bad})
            assert answer.status_code == 422, (bad, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert "endpoint" in answer.json()["field"], answer.text
        good = api.post("/api/v1/tasks", json={"url": "http://127.0.0.1:9/h?x=1", "endpoint": "customer-42"})
        assert good.status_code == 201, good.text
        fields = task_fields(redis_client, good.json()["id"])
        assert (fields["dest"], fields["ep"]) == (D, "#customer-42")  # the endpoint after its host
        plain = api.post("/api/v1/tasks", json={"url": "http://127.0.0.1:9/h?x=1"})
        assert task_fields(redis_client, plain.json()["id"])["ep"] == "/h"


def test_the_cli_shows_hosts_then_endpoints(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    open_breaker(store, redis_client, redis_url, now=2_000)
    with TestClient(create_app(load_settings({"REDIS_URL": redis_url}))) as api:
        shown = cli_render.destinations(api.get("/api/v1/destinations").json())
    hosts, endpoints, parked = shown.split("\n\n")
    assert hosts.splitlines()[0].split()[0] == "HOST" and D in hosts and "1 host known, 0 open" in hosts
    assert endpoints.splitlines()[0].split()[0] == "ENDPOINT" and E in endpoints
    assert "open" in endpoints and "timeout after 1s" in endpoints and "1 endpoint known, 1 open" in endpoints
    assert parked == "parked tasks: 0"
