"""The worker's concurrent script calls share round trips (storage/combiner.py), on a real Redis."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from queue_system.storage.combiner import Combined
from queue_system.storage.evalsha import Script, ScriptCaller
from queue_system.storage.task_store import RedisAsyncTaskStore
from queue_system.storage.types import Claim, NewTask, Skip, SkipReason
from queue_system.storage.worker_store import RedisTaskStore

# Echo the argument (counting the calls that ran), or fail for 'bad'.
ECHO = """
if ARGV[1] == 'bad' then return redis.error_reply('bad argument') end
redis.call('INCR', KEYS[1] .. ':calls')
return ARGV[1]
"""


def test_concurrent_calls_each_get_their_own_reply_in_fewer_round_trips(redis_client: redis.Redis) -> None:
    caller = ScriptCaller(redis_client)
    script = Script(caller, ECHO, "t")
    sent: list[int] = []

    def counting(calls: list[list[Any]]) -> list[Any]:
        sent.append(len(calls))
        return script.many(calls)

    combined = Combined(counting)
    replies: dict[int, Any] = {}
    start = threading.Barrier(16)

    def call(i: int) -> None:
        start.wait(timeout=5)
        for j in range(50):
            arg = "bad" if (i, j) == (3, 7) else f"{i}-{j}"
            try:
                assert combined(arg) == arg
            except redis.ResponseError as exc:
                replies[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    caller.close()
    assert not any(t.is_alive() for t in threads)
    assert list(replies) == [3] and "bad argument" in str(replies[3])  # only its caller failed
    assert sum(sent) == 16 * 50 and int(redis_client.get("t:calls") or 0) == 16 * 50 - 1  # type: ignore[arg-type]
    assert len(sent) < 16 * 50  # some calls rode together


def test_a_broken_connection_fails_the_batch_and_the_next_call_reconnects(redis_client: redis.Redis) -> None:
    caller = ScriptCaller(redis_client)
    combined = Combined(Script(caller, ECHO, "t").many)
    assert combined("a") == "a"
    redis_client.client_kill_filter(_type="normal", skipme=True)
    with pytest.raises(redis.ConnectionError):
        combined("b")
    assert combined("c") == "c"
    caller.close()


def test_concurrent_claims_are_one_script_call_and_each_gets_its_own_reply(
    redis_client: redis.Redis, redis_url: str
) -> None:
    async def create_all() -> None:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        store = RedisAsyncTaskStore(client)
        for i in range(40):
            await store.create(NewTask(f"c{i}", "webhook", "default", "{}", "fp", now=1_000))
        await client.aclose()

    asyncio.run(create_all())
    store = RedisTaskStore(redis_client)
    redis_client.config_resetstat()
    start = threading.Barrier(8)
    replies: dict[str, Claim | Skip] = {}

    def claim(k: int) -> None:
        start.wait(timeout=5)
        for i in range(k, 40, 8):
            replies[f"c{i}"] = store.claim(f"c{i}", 2 if i == 13 else 1, 2_000, 9_000)

    threads = [threading.Thread(target=claim, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    store.close()
    assert replies.pop("c13") == Skip(SkipReason.STALE)  # another token: only that claim is refused
    assert all(isinstance(r, Claim) and r.task.id == i for i, r in replies.items()) and len(replies) == 39
    # (How many rode together depends on the threads' timing: at most one script call per claim.)
    stats: dict[str, Any] = redis_client.info("commandstats")  # type: ignore[assignment]
    assert int(stats["cmdstat_evalsha"]["calls"]) <= 40
