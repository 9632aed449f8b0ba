"""Integration tests of the Redis storage scripts on a real Redis."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from importlib.resources import files

import dramatiq
import msgspec
import pytest
import redis
import redis.asyncio as aioredis

from queue_system.domain.models import (
    MAX_HISTORY,
    MAX_LOST_IN_A_ROW,
    AttemptResult,
    Outcome,
    TaskQuery,
    TaskStatus,
)
from queue_system.domain.policy import FixedPolicy, encode_policy
from queue_system.domain.retry import Decision
from queue_system.storage import codec, script_args, scripts
from queue_system.storage.task_store import RedisAsyncTaskStore
from queue_system.storage.types import (
    Change,
    ChangeResult,
    Claim,
    NewTask,
    Skip,
    SkipReason,
)
from queue_system.storage.worker_store import RedisTaskStore
from tests.support.store import (
    K,
    create,
    finish,
    finish_with,
    get,
    lose_message,
    ok,
    queued_messages,
)


def test_create_stores_record_indexes_and_a_dramatiq_message(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    assert create(redis_url, "t1")
    task = get(redis_url, "t1")
    assert task is not None and task.status is TaskStatus.PENDING and task.token == 1
    assert redis_client.zscore(K.index(), "t1") == 1_000
    assert redis_client.zscore(K.index(status="pending"), "t1") == 1_000
    assert redis_client.zscore(K.index(type_="webhook"), "t1") == 1_000
    (msg,) = queued_messages(redis_client)
    # Exactly what dramatiq.Message.decode reads (lua/common.lua `dispatch` writes it).
    assert dramatiq.Message.decode(json.dumps(msg).encode()).message_id == "t1#1"
    assert msg == {
        "queue_name": "default",
        "actor_name": "run_task",
        "args": ["t1", 1],
        "kwargs": {},
        "options": {"redis_message_id": "t1#1"},
        "message_id": "t1#1",
        "message_timestamp": 1_000,
    }
    decoded = dramatiq.Message.decode(json.dumps(msg).encode())
    assert decoded.actor_name == "run_task" and decoded.args == ("t1", 1)


def test_the_message_of_an_id_json_must_escape_is_still_dramatiq_s(
    redis_client: redis.Redis, redis_url: str
) -> None:
    odd = 'a"b\\c/\u00e9\n{x}'  # a quote, a backslash, a slash, non-ASCII, a newline, braces
    assert create(redis_url, odd)
    bodies: list[str] = redis_client.hvals(K.messages("default"))  # type: ignore[assignment]
    (raw,) = bodies
    decoded = dramatiq.Message.decode(raw.encode())
    assert decoded.args == (odd, 1) and decoded.message_id == f"{odd}#1"
    assert decoded.options == {"redis_message_id": f"{odd}#1"}


def test_duplicate_id_is_not_overwritten(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    assert create(redis_url, "dup")
    assert not create(redis_url, "dup", now=5_000)
    task = get(redis_url, "dup")
    assert task is not None and task.created_at == 1_000
    assert len(queued_messages(redis_client)) == 1


def test_claim_then_complete(store: RedisTaskStore, redis_client: redis.Redis, redis_url: str) -> None:
    create(redis_url, "t")
    started = ok(store.claim("t", 1, 1_500, 20_000))
    assert started.status is TaskStatus.PROCESSING and started.attempts == 1 and started.token == 1
    assert started.payload == {"url": "http://x"} and started.updated_at == 1_500
    assert started.trigger == "auto" and started.type == "webhook" and started.queue == "default"
    assert redis_client.zscore(K.leases, "t") == 20_000
    assert finish(store, "t", 1, TaskStatus.COMPLETED)
    task = get(redis_url, "t")
    assert task is not None and task.status is TaskStatus.COMPLETED and task.result == 1
    assert [a.n for a in task.history] == [1]
    assert redis_client.zscore(K.leases, "t") is None
    assert redis_client.zscore(K.index(status="completed"), "t") is not None
    assert redis_client.zscore(K.index(status="processing"), "t") is None
    assert redis_client.zscore(K.expiry, "t") == 62_000  # its owner: the sweeper purges it from there


def test_a_claimed_task_reads_as_get_reads_it(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    # The claim returns codec.CLAIMED_FIELDS from one HMGET, changed as it changes the hash; the
    # same fields, read back by GET, must decode to the same values (trigger: returned once).
    async def make() -> None:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            policy = encode_policy(
                FixedPolicy(interval_ms=2_000, max_age_ms=60_000, requested={"interval": "2s"})
            )
            extra = {"retry": policy, "timeout_ms": "1500", "dest": "http://x:80", "ep": "/"}
            new = NewTask("full", "webhook", "priority", '{"url":"http://x"}', "fp", 1_000, extra=extra)
            assert (await RedisAsyncTaskStore(client).create(new))[0]
        finally:
            await client.aclose()

    asyncio.run(make())
    redis_client.hset(
        K.task("full"), mapping={"trigger": "manual", "retried_at": 900, "attempt_base": 2, "attempts": 2}
    )
    claimed = ok(store.claim("full", 1, 1_500, 20_000))
    stored = get(redis_url, "full")
    assert stored is not None and claimed.trigger == "manual" and stored.trigger == "auto"
    names = {"id", "type", "status", "queue", "attempts", "created_at", "updated_at", "retry"}
    names |= {"timeout_ms", "token", "retried_at", "attempt_base", "dest", "ep"}
    assert names | {"trigger"} == set(codec.CLAIMED_FIELDS)
    names = (names - {"ep"}) | {"endpoint"}  # the stored `ep` (after the host) reads as Task.endpoint
    assert {n: getattr(claimed, n) for n in names} == {n: getattr(stored, n) for n in names}
    assert claimed.endpoint == "http://x:80/"
    assert (claimed.status, claimed.attempts, claimed.updated_at) == (TaskStatus.PROCESSING, 3, 1_500)
    assert claimed.retry == FixedPolicy(interval_ms=2_000, max_age_ms=60_000, requested={"interval": "2s"})
    assert (claimed.timeout_ms, claimed.dest, claimed.queue) == (1_500, "http://x:80", "priority")


def test_a_script_includes_only_the_helpers_its_code_calls() -> None:
    # Redis runs a script's whole chunk on every call: a helper named only in a comment must not
    # be defined in it (finish.lua once pulled in dispatch() by citing Dramatiq's dispatch.lua).
    library = (
        "local function used() return 1 end\n-- unused: see used()\nlocal function unused() return 2 end\n"
    )
    body = "-- calls used(), never unused()\nreturn used()\n"
    assert scripts._used_definitions(library, body) == "local function used() return 1 end\n"
    assert "local function dispatch(" in scripts.CREATE and "local function take_slot(" in scripts.CLAIM
    assert "local function dispatch(" not in scripts.CLAIM
    assert "local function read_claimed(" in scripts.CLAIM and "read_claimed" not in scripts.FINISH


def test_the_scripts_name_their_arguments_as_script_args_does() -> None:
    # The first line of each named script makes its ARGV locals, from the NamedTuple's fields;
    # a script of many items takes each item's fields, in order, as its item function's parameters.
    assert "local id, token, now, trigger, consumer, queue = ARGV[1], " in scripts.UNCLAIM
    assert "local retention_ms, host_cap, " in scripts.FINISH and "local EACH_ARGS = 11" in scripts.FINISH
    claim_params = ", ".join(script_args.ClaimEach._fields)
    finish_params = ", ".join(script_args.FinishEach._fields)
    assert f"local function claim({claim_params})" in scripts.CLAIM
    assert f"local function finish({finish_params})" in scripts.FINISH
    # (create's optional fields go first, then the CreateEach fields before n_extra)
    create_params = ", ".join(("extra", *script_args.CreateEach._fields[:-1]))
    assert f"local function create({create_params})" in scripts.CREATE


def test_attempt_history_keeps_the_last_max_history_attempts(store: RedisTaskStore, redis_url: str) -> None:
    create(redis_url, "h")
    for n in range(1, MAX_HISTORY + 6):
        assert isinstance(store.claim("h", n, 1_000 + n, 9_000_000), Claim)
        decision = Decision(TaskStatus.RETRYING, 1_000 + n)
        result = AttemptResult(Outcome.TRANSIENT, error="HTTP 503")
        assert finish_with(store, "h", n, decision, result, now=1_000 + n, n=n).recorded
        assert store.promote_due(1_000 + n) == 1  # the next token
    task = get(redis_url, "h")
    assert task is not None and task.attempts == MAX_HISTORY + 5
    assert [a.n for a in task.history] == list(range(6, MAX_HISTORY + 6))


def test_a_repeated_finish_is_recorded_once(store: RedisTaskStore, redis_url: str) -> None:
    # A worker that lost the reply of its finish sends it again: the second one changes nothing.
    create(redis_url, "t")
    store.claim("t", 1, 1_500, 9_000)
    assert finish(store, "t", 1, TaskStatus.COMPLETED)
    assert finish(store, "t", 1, TaskStatus.COMPLETED)
    task = get(redis_url, "t")
    assert task is not None and task.status is TaskStatus.COMPLETED
    assert [a.n for a in task.history] == [1]


def test_duplicate_or_stale_messages_are_skipped(store: RedisTaskStore, redis_url: str) -> None:
    create(redis_url, "t")
    assert store.claim("t", 2, 1_500, 9_000) == Skip(SkipReason.STALE)
    assert isinstance(store.claim("t", 1, 1_500, 9_000), Claim)
    assert store.claim("t", 1, 1_500, 9_000) == Skip(SkipReason.NOT_CLAIMABLE, TaskStatus.PROCESSING)
    finish(store, "t", 1, TaskStatus.COMPLETED)
    assert store.claim("t", 1, 3_000, 9_000) == Skip(SkipReason.NOT_CLAIMABLE, TaskStatus.COMPLETED)
    assert store.claim("missing", 1, 3_000, 9_000) == Skip(SkipReason.MISSING)


def test_concurrent_claims_admit_exactly_one(redis_client: redis.Redis, redis_url: str) -> None:
    create(redis_url, "race")
    results: list[Claim | Skip] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        store = RedisTaskStore(redis.Redis.from_url(redis_url, decode_responses=True))
        barrier.wait(5)
        results.append(store.claim("race", 1, 1_500, 9_000))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sum(isinstance(r, Claim) for r in results) == 1
    assert [r for r in results if isinstance(r, Skip)] == [
        Skip(SkipReason.NOT_CLAIMABLE, TaskStatus.PROCESSING)
    ] * 7


def test_retry_is_scheduled_then_promoted_with_a_new_token(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "r")
    store.claim("r", 1, 1_500, 9_000)
    assert finish(store, "r", 1, TaskStatus.RETRYING, next_at=12_000)
    assert redis_client.zscore(K.schedule, "r") == 12_000
    assert store.promote_due(11_999) == 0
    assert store.promote_due(12_000) == 1
    task = get(redis_url, "r")
    assert task is not None and task.status is TaskStatus.RETRYING and task.token == 2
    assert queued_messages(redis_client)[-1]["args"] == ["r", 2]
    assert store.claim("r", 1, 12_100, 20_000) == Skip(SkipReason.STALE)
    assert isinstance(store.claim("r", 2, 12_100, 20_000), Claim)


def test_scheduled_task_becomes_pending_when_due(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "later", due=50_000)
    assert queued_messages(redis_client) == []
    assert get(redis_url, "later").status is TaskStatus.SCHEDULED  # type: ignore[union-attr]
    store.promote_due(50_000)
    assert get(redis_url, "later").status is TaskStatus.PENDING  # type: ignore[union-attr]
    assert queued_messages(redis_client)[0]["args"] == ["later", 2]


def test_expired_lease_is_recovered_and_the_late_result_ignored(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "lost")
    store.claim("lost", 1, 1_500, 5_000)
    assert store.reclaim_expired(4_999, 60_000) == 0
    assert store.reclaim_expired(5_000, 60_000) == 1
    task = get(redis_url, "lost")
    assert task is not None and task.status is TaskStatus.RETRYING and task.token == 2
    assert task.history[-1].outcome is Outcome.LOST
    assert queued_messages(redis_client)[-1]["args"] == ["lost", 2]
    # The first worker comes back late: its outcome goes to history only.
    assert not finish(store, "lost", 1, TaskStatus.COMPLETED)
    assert get(redis_url, "lost").status is TaskStatus.RETRYING  # type: ignore[union-attr]


def test_a_task_that_keeps_losing_its_worker_fails(store: RedisTaskStore, redis_url: str) -> None:
    # A poison task (it kills its worker every time): recovered and re-run MAX_LOST_IN_A_ROW - 1
    # times, then failed rather than looping forever.
    create(redis_url, "poison")
    for token in range(1, MAX_LOST_IN_A_ROW + 1):
        assert isinstance(store.claim("poison", token, 1_000 * token, 1_000 * token + 500), Claim)
        assert store.reclaim_expired(1_000 * token + 500, 60_000) == 1
    task = get(redis_url, "poison")
    assert task is not None and task.status is TaskStatus.FAILED
    assert [a.outcome for a in task.history] == [Outcome.LOST] * MAX_LOST_IN_A_ROW
    assert task.last_error is not None and "lost attempts in a row" in task.last_error
    assert store.claim("poison", MAX_LOST_IN_A_ROW + 1, 99_000, 99_500) == Skip(
        SkipReason.NOT_CLAIMABLE, TaskStatus.FAILED
    )


def test_a_finished_attempt_resets_the_lost_count(store: RedisTaskStore, redis_url: str) -> None:
    create(redis_url, "flaky-host")
    token = 1
    for _ in range(3):  # lost, then a normal failure, again and again: never 5 lost in a row
        for _ in range(MAX_LOST_IN_A_ROW - 1):
            store.claim("flaky-host", token, 1_000, 1_500)
            assert store.reclaim_expired(1_500, 60_000) == 1
            token += 1
        store.claim("flaky-host", token, 2_000, 9_000)
        assert finish(store, "flaky-host", token, TaskStatus.RETRYING, next_at=2_000)
        store.promote_due(2_000)
        token += 1
    task = get(redis_url, "flaky-host")
    assert task is not None and task.status is TaskStatus.RETRYING


def test_a_waiting_task_whose_message_is_gone_is_dispatched_again(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "stranded", now=1_000)
    create(redis_url, "fine", now=1_000)
    lose_message(redis_client, "stranded", 1)

    assert store.redispatch_stranded(TaskStatus.PENDING, 0, 2_000, 5_000) == (2, 0)  # too recent
    assert store.redispatch_stranded(TaskStatus.PENDING, 0, 7_000, 5_000) == (2, 1)
    messages = queued_messages(redis_client)
    assert [m["args"] for m in messages] == [["fine", 1], ["stranded", 2]]
    assert isinstance(store.claim("stranded", 2, 7_100, 9_000), Claim)
    # Its message is back: a second pass finds nothing to do.
    assert store.redispatch_stranded(TaskStatus.PENDING, 0, 99_000, 5_000) == (1, 0)


def test_a_retrying_task_waiting_in_the_schedule_is_left_alone(store: RedisTaskStore, redis_url: str) -> None:
    create(redis_url, "r", now=1_000)
    store.claim("r", 1, 1_500, 9_000)
    assert finish(store, "r", 1, TaskStatus.RETRYING, next_at=500_000)
    assert store.redispatch_stranded(TaskStatus.RETRYING, 0, 400_000, 5_000) == (1, 0)


def test_the_walk_covers_the_waiting_tasks_a_slice_at_a_time(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    for i in range(5):
        create(redis_url, f"w{i}", now=1_000 + i)
        lose_message(redis_client, f"w{i}", 1)
    assert store.redispatch_stranded(TaskStatus.PENDING, 0, 900_000, 5_000, limit=2) == (2, 2)
    assert store.redispatch_stranded(TaskStatus.PENDING, 2, 900_000, 5_000, limit=2) == (2, 2)
    assert store.redispatch_stranded(TaskStatus.PENDING, 4, 900_000, 5_000, limit=2) == (1, 1)
    names = sorted(str(m["args"][0]) for m in queued_messages(redis_client))  # type: ignore[index]
    assert names == [f"w{i}" for i in range(5)]


def test_renew_extends_only_owned_processing_leases(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "a")
    store.claim("a", 1, 1_500, 5_000)
    assert store.renew_leases(30_000, [("a", 1), ("a", 7), ("ghost", 1)]) == 1
    assert redis_client.zscore(K.leases, "a") == 30_000


def test_sweep_purges_finished_tasks_after_retention(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "old")
    store.claim("old", 1, 1_500, 9_000)
    finish(store, "old", 1, TaskStatus.COMPLETED, now=2_000)
    assert store.sweep(61_999) == 0
    assert store.sweep(62_000) == 1
    assert get(redis_url, "old") is None
    for key in (K.index(), K.index(status="completed"), K.index(type_="webhook"), K.expiry):
        assert redis_client.zscore(key, "old") is None


def test_cancel_and_delete(redis_client: redis.Redis, redis_url: str, store: RedisTaskStore) -> None:
    create(redis_url, "c")

    async def go() -> tuple[ChangeResult, ChangeResult, bool, bool]:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        s = RedisAsyncTaskStore(client)
        try:
            first = await s.cancel("c", 3_000, 60_000)
            again = await s.cancel("c", 3_000, 60_000)
            return first, again, await s.delete("c"), await s.delete("c")
        finally:
            await client.aclose()

    assert asyncio.run(go()) == (
        ChangeResult(Change.DONE),
        ChangeResult(Change.REFUSED, TaskStatus.CANCELLED),
        True,
        False,
    )
    # Its message is still queued, and is skipped when it arrives.
    assert store.claim("c", 1, 4_000, 9_000) == Skip(SkipReason.MISSING)
    assert redis_client.keys("qs:idx:*") == []


def test_every_key_is_owned_by_the_key_module(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "k")
    store.claim("k", 1, 1_500, 9_000)
    finish(store, "k", 1, TaskStatus.COMPLETED)
    keys: list[str] = redis_client.keys("*")  # type: ignore[assignment]
    for key in keys:
        assert key.startswith("qs:")
    # A finished task's record is owned by EXPIRY (the sweeper purges it); indexes by the sweeper too.
    assert redis_client.zscore(K.expiry, "k") is not None


@pytest.fixture
def many(redis_url: str) -> Iterator[list[str]]:
    ids = [f"p{i:03d}" for i in range(25)]
    for i, task_id in enumerate(ids):
        create(redis_url, task_id, now=1_000 + i // 2, type_="webhook" if i % 3 else "other")
    yield ids


def _collect(redis_url: str, *, status: str | None, type_: str | None, limit: int) -> list[str]:
    async def go() -> list[str]:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        s = RedisAsyncTaskStore(client)
        seen: list[str] = []
        cursor = None
        try:
            for _ in range(100):
                page = await s.page(
                    TaskQuery(statuses=(status,) if status else (), type=type_, cursor=cursor, limit=limit)
                )
                seen += [t.id for t in page.tasks]
                cursor = page.next_cursor
                if cursor is None:
                    return seen
        finally:
            await client.aclose()
        raise AssertionError("pagination did not end")

    return asyncio.run(go())


@pytest.mark.usefixtures("redis_client")
def test_pagination_is_newest_first_and_complete_with_ties(redis_url: str, many: list[str]) -> None:
    seen = _collect(redis_url, status=None, type_=None, limit=4)
    assert sorted(seen) == sorted(many)
    assert len(seen) == len(set(seen))
    assert seen[0] == "p024"


@pytest.mark.usefixtures("redis_client")
def test_pagination_with_status_and_type_filters(redis_url: str, many: list[str]) -> None:
    seen = _collect(redis_url, status="pending", type_="other", limit=3)
    assert sorted(seen) == sorted(t for i, t in enumerate(many) if i % 3 == 0)


def test_a_result_json_cannot_hold_is_stored_as_text() -> None:
    from queue_system.storage.codec import dumps, loads

    class Odd:
        def __str__(self) -> str:
            return "odd!"

    assert loads(dumps({"x": Odd()})) == {"x": "odd!"}


def _new(task_id: str, fingerprint: str = "fp") -> NewTask:
    return NewTask(
        id=task_id,
        type="webhook",
        queue="default",
        payload_json='{"url":"http://x"}',
        fingerprint=fingerprint,
        now=1_000,
    )


def test_concurrent_creates_are_pipelined_and_each_gets_its_own_reply(
    redis_client: redis.Redis, redis_url: str
) -> None:
    async def go() -> list[tuple[bool, str]]:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            store = RedisAsyncTaskStore(client)
            # 100: more than one script call takes (Batcher.MANY); optional fields of 0, 1 or 2.
            news = [_new(f"c{i}") for i in range(100)] + [_new("c7", fingerprint="other")]
            for i in range(0, 100, 3):
                news[i] = msgspec.structs.replace(news[i], extra={"timeout_ms": str(i)})
            for i in range(1, 100, 5):
                news[i] = msgspec.structs.replace(news[i], extra={"dest": "http://h:80", "ep": f"/{i}"})
            return await asyncio.gather(*(store.create(n) for n in news))
        finally:
            await client.aclose()

    out = asyncio.run(go())
    assert out[:100] == [(True, "")] * 100
    assert out[100] == (False, "fp")  # the duplicate id sees the first one's fingerprint
    assert len(queued_messages(redis_client)) == 100
    assert redis_client.zcard(K.index()) == 100
    assert redis_client.hmget(K.task("c3"), ["timeout_ms", "dest"]) == ["3", None]
    assert redis_client.hmget(K.task("c6"), ["timeout_ms", "dest", "ep"]) == [None, "http://h:80", "/6"]
    assert redis_client.hget(K.task("c2"), "status") == "pending"


def test_create_reloads_its_script_after_redis_forgot_it(redis_client: redis.Redis, redis_url: str) -> None:
    async def go() -> list[tuple[bool, str]]:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            store = RedisAsyncTaskStore(client)
            first = await store.create(_new("before"))
            await client.script_flush()  # as after a Redis restart
            rest = await asyncio.gather(store.create(_new("after1")), store.create(_new("after2")))
            return [first, *rest]
        finally:
            await client.aclose()

    assert asyncio.run(go()) == [(True, "")] * 3
    assert len(queued_messages(redis_client)) == 3


def test_worker_scripts_reload_after_redis_forgot_them(
    store: RedisTaskStore, redis_client: redis.Redis
) -> None:
    assert store.promote_due(1_000) == 0
    redis_client.script_flush()
    assert store.promote_due(1_000) == 0
    assert store.claim("nothing", 1, 1_000, 2_000) == Skip(SkipReason.MISSING)


def test_a_failed_batch_fails_each_of_its_callers() -> None:
    async def go() -> list[BaseException | tuple[bool, str]]:
        client = aioredis.Redis.from_url("redis://127.0.0.1:1", decode_responses=True)  # nobody listens
        try:
            store = RedisAsyncTaskStore(client)
            first = await asyncio.gather(
                *(store.create(_new(f"f{i}")) for i in range(3)), return_exceptions=True
            )
            # The batcher is idle again: the next call fails the same way instead of hanging.
            later = await asyncio.gather(store.create(_new("later")), return_exceptions=True)
            return [*first, *later]
        finally:
            await client.aclose()

    out = asyncio.run(go())
    assert len(out) == 4 and all(isinstance(f, redis.ConnectionError) for f in out)


def test_a_stalled_redis_fails_the_batch_after_its_timeout() -> None:
    # A server that accepts connections and never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]

        async def go() -> list[BaseException | tuple[bool, str]]:
            client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}", decode_responses=True)
            try:
                store = RedisAsyncTaskStore(client)
                store._create.TIMEOUT_S = 0.3
                return await asyncio.gather(
                    *(store.create(_new(f"s{i}")) for i in range(3)), return_exceptions=True
                )
            finally:
                await client.aclose()

        out = asyncio.run(go())
    assert all(isinstance(f, redis.TimeoutError) for f in out), out


def test_finish_maps_the_outcome_to_the_record(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "f")
    store.claim("f", 1, 1_500, 9_000)
    transient = AttemptResult(Outcome.TRANSIENT, error="HTTP 503")
    assert finish_with(store, "f", 1, Decision(TaskStatus.RETRYING, 5_000), transient).recorded
    fields: dict[str, str] = redis_client.hgetall(K.task("f"))  # type: ignore[assignment]
    assert fields["last_error"] == "HTTP 503" and fields["next_attempt_at"] == "5000"
    assert "completed_at" not in fields and "result" not in fields and "started_at" not in fields

    store.promote_due(5_000)
    store.claim("f", 2, 5_100, 9_000)
    gave_up = Decision(TaskStatus.FAILED, reason="gave up after 2 attempts")
    assert finish_with(store, "f", 2, gave_up, AttemptResult(Outcome.PERMANENT), now=6_000).recorded
    fields = redis_client.hgetall(K.task("f"))  # type: ignore[assignment]
    assert fields["last_error"] == "permanent; gave up after 2 attempts"  # no error text: the outcome
    assert fields["completed_at"] == "6000" and "next_attempt_at" not in fields

    create(redis_url, "g")
    store.claim("g", 1, 1_500, 9_000)
    finish_with(store, "g", 1, Decision(TaskStatus.RETRYING, 2_000), transient)
    store.promote_due(2_000)
    store.claim("g", 2, 2_100, 9_000)
    finish_with(
        store, "g", 2, Decision(TaskStatus.COMPLETED), AttemptResult(Outcome.SUCCESS, result={"a": 1})
    )
    task = get(redis_url, "g")
    assert task is not None and task.result == {"a": 1} and task.last_error is None
    assert task.completed_at == 2_000 and task.next_attempt_at is None


def test_the_lua_spells_no_key_or_wire_name_of_its_own() -> None:
    # Key names come from Keys and Dramatiq's names from dramatiq_wire, rendered into the prelude.
    prelude = scripts.render_prelude()
    assert "local function task_key(id) return P .. ':task:' .. id end" in prelude
    assert "local SCHEDULE = P .. ':schedule'" in prelude
    assert "['priority'] = 'run_task_priority'" in prelude
    for path in (files("queue_system.storage") / "lua").iterdir():
        source = path.read_text()
        code = "\n".join(line.split("--")[0] for line in source.splitlines())
        spelled = (
            ":task:",
            ":history",
            ":payload",
            ":inflight",
            ":parked",
            ":layout",
            ":idx:",
            ":schedule",
            ":leases",
            ":expiry",
            ":dest",
            ":stats:",
            "dramatiq",
            "run_task",
        )
        for literal in (*spelled, "'#'"):
            assert literal not in code, f"{path.name} spells {literal!r}"
        if path.name not in ("common.lua", "destinations.lua", "queues.lua", "actions.lua"):  # the libraries
            assert source.startswith(f"-- {path.name.removesuffix('.lua')}: "), path.name
            assert "-- KEYS[1]" in source and "-- ARGV" in source and "-- Returns" in source, path.name
