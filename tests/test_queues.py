"""Queue pause and resume on a real Redis: the claim holds a paused queue's tasks (no spin, no
claim), resume releases them in order with new tokens, both are idempotent, retries and parked
tasks that come due while paused wait too, the reconciler leaves held tasks alone and finishes a
resume a dead API left; and the API's answers and problems."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio as aioredis
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.config.settings import load_settings
from queue_system.domain.destinations import DestinationLimits
from queue_system.domain.models import AttemptResult, Outcome, TaskStatus
from queue_system.domain.queues import QueueState, Resumed
from queue_system.domain.retry import Decision
from queue_system.local.embedded import EmbeddedRedis
from queue_system.service.queues import QueueService
from queue_system.service.reconciler import Reconciler
from queue_system.service.runner import InFlight
from queue_system.storage import queues as queue_storage
from queue_system.storage.keys import Keys
from queue_system.storage.queues import AsyncQueueStore, QueueStore
from queue_system.storage.task_store import RedisAsyncTaskStore
from queue_system.storage.types import Claim, Skip, SkipReason
from queue_system.storage.worker_store import RedisTaskStore
from tests.support.api import assert_problem
from tests.support.store import create, finish, finish_with, get, queued_messages

K = Keys()
T = TypeVar("T")


def on_api(redis_url: str, call: Callable[[AsyncQueueStore], Awaitable[T]]) -> T:
    async def go() -> T:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            return await call(AsyncQueueStore(client, K))
        finally:
            await client.aclose()

    return asyncio.run(go())


def pause(redis_url: str, now: int = 1_500) -> int:
    return on_api(redis_url, lambda s: s.pause("default", now))


def resume(redis_url: str, now: int = 5_000) -> Resumed:
    return on_api(redis_url, lambda s: s.resume("default", now))


def state(redis_url: str) -> QueueState:
    return on_api(redis_url, lambda s: s.states(["default"], 9_000))[0]


def queued(redis_client: redis.Redis) -> list[tuple[str, int]]:
    return [(str(m["args"][0]), int(m["args"][1])) for m in queued_messages(redis_client)]  # type: ignore[index]


def test_a_paused_queue_holds_its_task_instead_of_claiming_it(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "a", now=1_000)
    assert pause(redis_url) == 1_500
    skip = store.claim("a", 1, 2_000, 9_000)
    assert isinstance(skip, Skip) and skip.reason is SkipReason.PAUSED
    task = get(redis_url, "a")
    assert task is not None and task.status is TaskStatus.PENDING and task.attempts == 0
    assert task.created_at == 1_000  # its windows still count from creation
    assert redis_client.zrange(K.held("default"), 0, -1, withscores=True) == [("a", 1_000.0)]
    assert redis_client.zscore(K.leases, "a") is None
    # The message is spent (token moved on): a copy of it, or a repeat, does not spin or claim.
    assert store.claim("a", 1, 2_100, 9_000) == Skip(SkipReason.STALE)
    # Not lost: the reconciler's walk for stranded tasks leaves a held task alone.
    assert store.redispatch_stranded(TaskStatus.PENDING, 0, 10_000_000, 5_000) == (1, 0)
    s = state(redis_url)
    assert (s.paused_at, s.queued, s.held, s.depth, s.oldest_created_at) == (1_500, 1, 1, 2, 1_000)


def test_resume_releases_the_held_tasks_oldest_first_with_new_tokens(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    for i in range(5):
        create(redis_url, f"t{i}", now=1_000 + i)
    pause(redis_url)
    for i in (3, 0, 4, 1, 2):  # fetched in any order
        assert store.claim(f"t{i}", 1, 2_000, 9_000) == Skip(SkipReason.PAUSED)
    redis_client.delete(K.queue("default"), K.messages("default"))  # (what the consumer acked)
    done = resume(redis_url)
    assert done == Resumed(was_paused=True, released=5)
    assert queued(redis_client) == [(f"t{i}", 3) for i in range(5)]
    assert redis_client.exists(K.held("default"), K.paused_queues) == 0
    for i in range(5):
        assert isinstance(store.claim(f"t{i}", 3, 6_000, 9_000), Claim)
        assert store.claim(f"t{i}", 1, 6_000, 9_000) == Skip(SkipReason.NOT_CLAIMABLE, TaskStatus.PROCESSING)


def test_pause_and_resume_are_idempotent(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "a", now=1_000)
    assert pause(redis_url, 1_500) == 1_500
    assert pause(redis_url, 1_600) == 1_500  # the first pause's time is kept
    store.claim("a", 1, 2_000, 9_000)
    assert resume(redis_url) == Resumed(was_paused=True, released=1)
    assert resume(redis_url) == Resumed(was_paused=False, released=0)
    assert [m for m in queued(redis_client) if m[0] == "a"] == [("a", 1), ("a", 3)]  # one live message
    assert isinstance(store.claim("a", 3, 6_000, 9_000), Claim)


def test_resume_releases_a_large_backlog_in_batches(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queue_storage, "RELEASE_BATCH", 3)
    for i in range(10):
        create(redis_url, f"b{i}", now=1_000 + i)
    pause(redis_url)
    for i in range(10):
        store.claim(f"b{i}", 1, 2_000, 9_000)
    redis_client.delete(K.queue("default"), K.messages("default"))
    assert resume(redis_url).released == 10
    assert [m[0] for m in queued(redis_client)] == [f"b{i}" for i in range(10)]


def test_a_retry_that_comes_due_while_paused_waits_too(store: RedisTaskStore, redis_url: str) -> None:
    create(redis_url, "r", now=1_000)
    assert isinstance(store.claim("r", 1, 1_100, 9_000), Claim)
    pause(redis_url)  # the attempt under way finishes as usual
    assert finish(store, "r", 1, TaskStatus.RETRYING, now=1_200, next_at=3_000)
    assert store.promote_due(3_000) == 1
    assert store.claim("r", 2, 3_100, 9_000) == Skip(SkipReason.PAUSED)
    task = get(redis_url, "r")
    assert task is not None and task.status is TaskStatus.RETRYING and task.attempts == 1
    assert resume(redis_url).released == 1
    assert isinstance(store.claim("r", 4, 6_000, 9_000), Claim)


def test_a_parked_task_released_while_paused_gives_its_slots_back(
    redis_client: redis.Redis, redis_url: str
) -> None:
    store = RedisTaskStore(redis_client, limits=DestinationLimits(max_inflight=1))
    for tid in ("p1", "p2"):
        create(redis_url, tid, now=1_000)
        redis_client.hset(K.task(tid), "dest", "http://h:80")  # (its endpoint: its host)
    assert isinstance(store.claim("p1", 1, 1_100, 9_000), Claim)
    assert store.claim("p2", 1, 1_100, 9_000).reason is SkipReason.PARKED  # type: ignore[union-attr]
    pause(redis_url)
    done = AttemptResult(Outcome.SUCCESS, result=1)  # frees the slot: p2 is released to it
    assert finish_with(
        store, "p1", 1, Decision(TaskStatus.COMPLETED), done, now=1_200, dest="http://h:80"
    ).recorded
    token = int(str(redis_client.hget(K.task("p2"), "token")))
    assert redis_client.zscore(K.dest_inflight("http://h:80"), "p2") is not None
    assert store.claim("p2", token, 1_300, 9_000) == Skip(SkipReason.PAUSED)
    assert redis_client.zcard(K.dest_inflight("http://h:80")) == 0
    assert redis_client.zcard(K.endpoint_inflight("http://h:80")) == 0
    resume(redis_url)
    assert isinstance(store.claim("p2", token + 2, 6_000, 9_000), Claim)


def test_a_cancelled_held_task_leaves_the_held_set(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "c", now=1_000)
    pause(redis_url)
    store.claim("c", 1, 2_000, 9_000)

    async def cancel() -> None:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            await RedisAsyncTaskStore(client).cancel("c", 3_000, 60_000)
        finally:
            await client.aclose()

    asyncio.run(cancel())
    assert redis_client.exists(K.held("default")) == 0
    assert resume(redis_url) == Resumed(was_paused=True, released=0)


def test_the_reconciler_finishes_a_resume_whose_caller_died(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "a", now=1_000)
    create(redis_url, "b", now=1_001)
    pause(redis_url)
    store.claim("a", 1, 2_000, 9_000)
    store.claim("b", 1, 2_000, 9_000)
    backstop = QueueStore(redis_client, K)
    assert backstop.release_resumed(3_000) == 0  # still paused: held stays held
    redis_client.hdel(K.paused_queues, "default")  # resumed, and its caller died before releasing
    assert backstop.release_resumed(3_000) == 2
    assert backstop.release_resumed(3_000) == 0
    assert isinstance(store.claim("a", 3, 6_000, 9_000), Claim)


# ---------------------------------------------------------------- the API


@pytest.fixture
def client(redis_client: redis.Redis, redis_url: str) -> Iterator[TestClient[Any]]:
    settings = load_settings({"REDIS_URL": redis_url, "EGRESS_ALLOW_CIDRS": "127.0.0.0/8"})
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_api_lists_pauses_and_resumes(client: TestClient[Any], store: RedisTaskStore) -> None:
    names = [q["name"] for q in client.get("/api/v1/queues").json()["items"]]
    assert names == ["default", "priority"]
    paused = client.post("/api/v1/queues/default/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] is True and paused.json()["paused_at"]
    again = client.post("/api/v1/queues/default/pause")
    assert again.json()["paused_at"] == paused.json()["paused_at"]
    submitted = client.post("/api/v1/tasks", json={"type": "echo", "payload": "held"})
    assert submitted.status_code == 201, submitted.text  # accepted, and waits
    tid = submitted.json()["id"]
    assert store.claim(tid, 1, 10**13, 10**13 + 1) == Skip(SkipReason.PAUSED)
    one = client.get("/api/v1/queues/default").json()
    assert (one["paused"], one["held"], one["depth"]) == (True, 1, 2)
    assert one["oldest_age_ms"] is not None and one["oldest_age_ms"] >= 0
    resumed = client.post("/api/v1/queues/default/resume")
    assert resumed.status_code == 200, resumed.text
    assert (resumed.json()["paused"], resumed.json()["released"], resumed.json()["held"]) == (False, 1, 0)
    assert client.post("/api/v1/queues/default/resume").json()["released"] == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/queues/nope"),
        ("post", "/api/v1/queues/nope/pause"),
        ("post", "/api/v1/queues/x%3Ay/resume"),
    ],
)
def test_an_unknown_queue_is_a_404_naming_it(client: TestClient[Any], method: str, path: str) -> None:
    body = assert_problem(getattr(client, method)(path), 404)
    assert "no queue named" in body["detail"] and "default" in body["detail"]


def test_the_service_refuses_names_outside_queues() -> None:
    with pytest.raises(Exception, match="no queue named 'default:x'"):
        QueueService.check("default:x")


def test_metrics_show_each_queue_paused_and_its_depth(client: TestClient[Any]) -> None:
    from tests.support.metrics import scrape, value

    assert client.post("/api/v1/queues/priority/pause").status_code == 200
    assert (
        client.post("/api/v1/tasks", json={"type": "echo", "payload": "p", "queue": "priority"}).status_code
        == 201
    )
    samples = scrape(client)
    assert value(samples, "queue_system_queue_paused", queue="priority") == 1
    assert value(samples, "queue_system_queue_paused", queue="default") == 0
    assert value(samples, "queue_system_queue_depth", queue="priority") == 1
    assert value(samples, "queue_system_queue_held", queue="priority") == 0
    assert value(samples, "queue_system_queue_oldest_age_seconds", queue="priority") >= 0


def test_the_pause_and_the_held_tasks_survive_a_redis_restart(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = EmbeddedRedis(tmp_path_factory.mktemp("durable-queues"), persist=True)
    url = server.start()
    try:
        create(url, "kept", now=1_000)
        pause(url)
        with redis.Redis.from_url(url, decode_responses=True) as client:
            worker = RedisTaskStore(client)
            assert worker.claim("kept", 1, 2_000, 9_000) == Skip(SkipReason.PAUSED)
            worker.close()
        server.stop()
        url = server.start()
        s = state(url)
        assert (s.paused_at, s.held) == (1_500, 1)
        assert resume(url).released == 1
        with redis.Redis.from_url(url, decode_responses=True) as client:
            worker = RedisTaskStore(client)
            assert isinstance(worker.claim("kept", 3, 6_000, 9_000), Claim)
            worker.close()
    finally:
        server.stop()


def test_a_reconciler_tick_releases_what_a_resumed_queue_still_holds(
    store: RedisTaskStore, redis_client: redis.Redis, redis_url: str
) -> None:
    create(redis_url, "a", now=1_000)
    pause(redis_url)
    store.claim("a", 1, 2_000, 9_000)
    reconciler = Reconciler(
        store,
        InFlight(),
        lease_ms=15_000,
        poll_interval_ms=100,
        retention_ms=60_000,
        queues=QueueStore(redis_client, K),
    )
    assert reconciler.tick()["released"] == 0  # paused: it stays held
    redis_client.hdel(K.paused_queues, "default")
    assert "released" not in reconciler.tick()  # once a second at most
    reconciler._last_release = 0
    assert reconciler.tick()["released"] == 1
    assert redis_client.exists(K.held("default")) == 0
