"""What the claims and finishes of one script call share (lua/claim.lua, lua/finish.lua): the
host's breaker and slot count, looked up once per call, stay exact as the call's tasks change
them; the per-minute counts add up. On a real Redis, through the store's batched calls."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from queue_system.domain.destinations import DestinationLimits
from queue_system.domain.models import AttemptResult, Outcome, TaskStatus
from queue_system.domain.retry import Decision
from queue_system.storage.keys import Keys
from queue_system.storage.script_args import ClaimEach
from queue_system.storage.types import FinishCall
from queue_system.storage.worker_store import RedisTaskStore
from tests.support.destinations import D, create
from tests.support.store import attempt, claimed, get

K = Keys()
LIMITS = DestinationLimits(
    max_inflight=3,
    breaker_threshold=2,
    cooldown_ms=1_000,
    max_cooldown_ms=3_000,
    hold_ms=5_000,
    max_inflight_per_endpoint=2,
)
UP = AttemptResult(Outcome.SUCCESS, result=1, status_code=200)
REFUSED = AttemptResult(Outcome.TRANSIENT, error="ConnectError: refused", connect_failed=True)


@pytest.fixture
def store(redis_client: redis.Redis) -> Iterator[RedisTaskStore]:
    store = RedisTaskStore(redis_client, limits=LIMITS)
    yield store
    store.close()


def claim_in_one_call(store: RedisTaskStore, ids: list[str], now: int = 1_500) -> list[str]:
    replies = store._claim_many([list(ClaimEach(i, 1, now, now + 10_000)) for i in ids])
    return [str(r[0]) if r[0] != "parked" else f"parked {r[1]} {r[2]}" for r in replies]


def one_endpoint_each(redis_url: str, ids: list[str]) -> None:
    for i in ids:
        create(redis_url, i, endpoint=f"{D}/{i}")


def test_one_call_never_takes_more_than_the_hosts_cap(store: RedisTaskStore, redis_url: str) -> None:
    ids = ["a", "b", "c", "d", "e"]
    one_endpoint_each(redis_url, ids)
    assert claim_in_one_call(store, ids) == ["ok", "ok", "ok", "parked busy host", "parked busy host"]
    assert store.client.zcard(K.dest_inflight(D)) == 3


def test_a_parked_claim_in_the_call_leaves_the_count_exact(store: RedisTaskStore, redis_url: str) -> None:
    # Two of one endpoint (its bound is 2), then a third of it (parked at the endpoint), then
    # others: the host's count goes on from what the call took, and stops at its cap.
    for i in ("a", "b", "c"):
        create(redis_url, i, endpoint=f"{D}/same")
    one_endpoint_each(redis_url, ["d", "e"])
    assert claim_in_one_call(store, ["a", "b", "c", "d", "e"]) == [
        "ok",
        "ok",
        "parked busy endpoint",
        "ok",
        "parked busy host",
    ]
    assert store.client.zcard(K.dest_inflight(D)) == 3


def finish_in_one_call(store: RedisTaskStore, outcomes: list[tuple[str, AttemptResult]], now: int) -> None:
    calls = []
    for task_id, result in outcomes:
        status = TaskStatus.COMPLETED if result.outcome is Outcome.SUCCESS else TaskStatus.RETRYING
        decision = Decision(status, now + 100 if status is TaskStatus.RETRYING else None)
        calls.append(FinishCall(claimed(task_id, 1, D), attempt(), decision, result, now))
    assert all(f.recorded for f in store.finish_many(calls, retention_ms=60_000))


def test_a_failure_after_an_answer_in_one_call_still_counts(store: RedisTaskStore, redis_url: str) -> None:
    ids = ["a", "b", "c"]
    one_endpoint_each(redis_url, ids)
    claim_in_one_call(store, ids)
    finish_in_one_call(store, [("a", UP), ("b", REFUSED), ("c", REFUSED)], now=2_000)
    breaker: dict[str, str] = store.client.hgetall(K.dest(D))  # type: ignore[assignment]
    assert breaker["failures"] == "2" and breaker["state"] == "open"  # threshold 2


def test_an_answer_after_a_failure_in_one_call_clears_it(store: RedisTaskStore, redis_url: str) -> None:
    ids = ["a", "b", "c"]
    one_endpoint_each(redis_url, ids)
    claim_in_one_call(store, ids)
    finish_in_one_call(store, [("a", REFUSED), ("b", UP), ("c", REFUSED)], now=2_000)
    breaker: dict[str, str] = store.client.hgetall(K.dest(D))  # type: ignore[assignment]
    assert breaker["failures"] == "1" and breaker.get("state", "closed") == "closed"


def test_a_calls_counts_per_minute_add_up(store: RedisTaskStore, redis_url: str) -> None:
    ids = ["a", "b", "c"]
    one_endpoint_each(redis_url, ids)
    claim_in_one_call(store, ids)
    finish_in_one_call(store, [("a", UP), ("b", REFUSED), ("c", UP)], now=120_000)
    minute = K.stats_minute(2)
    assert store.client.hgetall(minute) == {"completed": "2", "retried": "1"}
    ttl: int = store.client.pttl(minute)  # type: ignore[assignment]
    assert 0 < ttl <= 7_200_000


def test_a_lost_attempt_started_when_it_was_claimed(store: RedisTaskStore, redis_url: str) -> None:
    # The claim writes no `started_at`: a processing task's `updated_at` is its claim's time.
    one_endpoint_each(redis_url, ["a"])
    assert claim_in_one_call(store, ["a"], now=1_500) == ["ok"]
    assert store.reclaim_expired(20_000, retention_ms=60_000) == 1
    task = get(redis_url, "a")
    assert task is not None and task.status is TaskStatus.RETRYING
    lost = task.history[-1]
    assert lost.outcome is Outcome.LOST and lost.started_at == 1_500 and lost.duration_ms == 18_500
    assert not store.client.hexists(K.task("a"), "started_at")
