"""What a redis-py error means: `classify` turns it into a StorageError of the errors tree
(queue_system/errors.py). The only place that reads Redis's error replies.

Redis names a refusal by the first word of its reply (`OOM`, `READONLY`, `MISCONF`, `NOREPLICAS`,
`LOADING`, `BUSY`, `MASTERDOWN`); redis-py turns some into their own classes and strips the word.
Inside a Lua script Redis 6 wraps the failing command's reply in the script's error
(`Error running script (call to f_...): @user_script:12: @user_script: 12: -OOM command not
allowed ...`), and redis-py's pipelines wrap it in theirs (`Command # 1 (SET ...) of pipeline
caused error: ('MISCONF ...',)`), so the word is looked for there too: a full Redis must not read
as a broken script.

`probe_writes` (the API's readiness) and `probe_writes_sync` (the worker's health) check that
Redis takes a write, since a full or read-only Redis still answers every read and PING.
"""

from __future__ import annotations

import os
import re

import redis
import redis.asyncio as aioredis
from redis.exceptions import OutOfMemoryError, ReadOnlyError

from queue_system.errors import (
    RedisOutOfMemory,
    RedisReadOnly,
    RedisRefusesWrites,
    RedisUnreachable,
    StorageError,
    StorageFault,
)

# The probe key lives this long: a probe leaves no key without an expiry.
PROBE_TTL_MS = 10_000

# A command's error reply quoted in a script's error (`: -OOM `) or a pipeline's (`('OOM `).
_WRAPPED_CODE = re.compile(r"(?:: -|\(['\"])([A-Z]+) ")
_UNAVAILABLE = frozenset({"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN"})
_REFUSES_WRITES = frozenset({"MISCONF", "NOREPLICAS"})


def classify(exc: redis.RedisError) -> StorageError:
    """The StorageError `exc` means; anything not known to be transient is a StorageFault."""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):  # incl. LOADING, auth failures
        return RedisUnreachable(f"{type(exc).__name__}: {exc}")
    text = str(exc)
    if isinstance(exc, OutOfMemoryError):  # redis-py dropped the code word: put it back
        return RedisOutOfMemory(f"OOM {text}")
    if isinstance(exc, ReadOnlyError):
        return RedisReadOnly(f"READONLY {text}")
    if not isinstance(exc, redis.ResponseError):  # a reply redis-py could not parse, bad data ...
        return StorageFault(f"{type(exc).__name__}: {text}")
    codes = {text.split(" ", 1)[0], *_WRAPPED_CODE.findall(text)}
    if "OOM" in codes:
        return RedisOutOfMemory(text)
    if "READONLY" in codes:
        return RedisReadOnly(text)
    if codes & _REFUSES_WRITES:
        return RedisRefusesWrites(text)
    if codes & _UNAVAILABLE:
        return RedisUnreachable(text)
    return StorageFault(text)


def _owner() -> str:
    return f"pid {os.getpid()}"


async def probe_writes(client: aioredis.Redis, key: str) -> None:
    """One SET with an expiry; raises the StorageError Redis's refusal means."""
    try:
        await client.set(key, _owner(), px=PROBE_TTL_MS)
    except redis.RedisError as exc:
        raise classify(exc) from exc


def probe_writes_sync(client: redis.Redis, key: str) -> None:
    """`probe_writes` for a synchronous client (the worker's health reporter)."""
    try:
        client.set(key, _owner(), px=PROBE_TTL_MS)
    except redis.RedisError as exc:
        raise classify(exc) from exc
