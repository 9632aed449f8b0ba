"""The worker's concurrent script calls share pipelines (storage/combiner.py), on a real Redis."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis

from queue_system.storage.combiner import Combined
from queue_system.storage.evalsha import Script, ScriptCaller

# Echo the argument (counting the calls that ran), or fail for 'bad'.
ECHO = """
if ARGV[1] == 'bad' then return redis.error_reply('bad argument') end
redis.call('INCR', KEYS[1] .. ':calls')
return ARGV[1]
"""


def test_concurrent_calls_each_get_their_own_reply_in_fewer_round_trips(redis_client: redis.Redis) -> None:
    caller = ScriptCaller(redis_client)
    combined = Combined(Script(caller, ECHO, "t"))
    sent: list[int] = []
    many = combined.script.many

    def counting(calls: list[list[Any]]) -> list[Any]:
        sent.append(len(calls))
        return many(calls)

    combined.script.many = counting  # type: ignore[method-assign]
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
    combined = Combined(Script(caller, ECHO, "t"))
    assert combined("a") == "a"
    redis_client.client_kill_filter(_type="normal", skipme=True)
    with pytest.raises(redis.ConnectionError):
        combined("b")
    assert combined("c") == "c"
    caller.close()
