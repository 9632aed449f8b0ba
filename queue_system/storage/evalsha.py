"""EVALSHA callers for the storage scripts' hot paths, cheaper than redis-py's generic route.

`ScriptCaller`/`Script`: the worker's threads, EVALSHA on a connection per thread.
`Batcher`: the API's concurrent submits, sent as pipelines.
Both load a script Redis does not know (NOSCRIPT: a restart, SCRIPT FLUSH) and re-send.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import hiredis
import redis
import redis.asyncio as aioredis
from redis.connection import AbstractConnection
from redis.exceptions import NoScriptError

from queue_system.errors import RedisNotReplicated, RedisReadOnly, RedisRefusesWrites
from queue_system.storage.failures import classify


class ScriptCaller:
    """EVALSHA on a connection of the calling thread's own.

    The worker's claim and finish run once per task on every thread; going through
    `Script.__call__` and the pool's get/release per call was a fifth of the worker's CPU per
    no-op task (bench/README.md, profile_worker). Each thread keeps one connection (the worker has
    a fixed set of threads); a NOSCRIPT reply (Redis restarted or flushed its scripts) loads the
    script and retries, and a broken connection is reconnected once, as redis-py's own retry does.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._local = threading.local()
        self._all: weakref.WeakSet[AbstractConnection] = weakref.WeakSet()

    def _connection(self) -> AbstractConnection:
        conn: AbstractConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._pool.connection_class(**self._pool.connection_kwargs)
            self._local.conn = conn
            self._all.add(conn)
        return conn

    def __call__(self, sha: str, source: str, args: list[Any]) -> Any:
        conn = self._connection()
        for attempt in (1, 2, 3):
            try:
                conn.send_command("EVALSHA", sha, 1, *args)  # type: ignore[no-untyped-call]
                return conn.read_response()  # type: ignore[no-untyped-call]
            except NoScriptError:
                if attempt == 3:
                    raise
                conn.send_command("SCRIPT", "LOAD", source)  # type: ignore[no-untyped-call]
                conn.read_response()  # type: ignore[no-untyped-call]
            except (redis.ConnectionError, redis.TimeoutError):
                conn.disconnect()  # type: ignore[no-untyped-call]
                if attempt > 1:
                    raise
            except redis.ResponseError as exc:
                if demoted(exc):  # the next call reconnects, to wherever the primary is now
                    conn.disconnect()  # type: ignore[no-untyped-call]
                raise
        raise AssertionError("unreachable")

    def many(self, sha: str, source: str, calls: list[list[Any]]) -> list[Any]:
        """EVALSHA for each of `calls` in one pipeline on this thread's connection; -> their
        replies in order (an error reply is returned, not raised). A broken connection raises
        (the caller retries the whole batch: the worker's scripts are safe to repeat)."""
        if not calls:
            return []
        conn = self._connection()
        packed = [("EVALSHA", sha, 1, *args) for args in calls]
        try:
            conn.send_packed_command(conn.pack_commands(packed))  # type: ignore[no-untyped-call]
            replies: list[Any] = []
            for _ in calls:
                try:
                    replies.append(conn.read_response())  # type: ignore[no-untyped-call]
                except redis.ResponseError as exc:
                    replies.append(exc)
        except (redis.ConnectionError, redis.TimeoutError):
            conn.disconnect()  # type: ignore[no-untyped-call]
            raise
        if any(isinstance(reply, redis.ResponseError) and demoted(reply) for reply in replies):
            conn.disconnect()  # type: ignore[no-untyped-call]
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:  # Redis restarted or flushed its scripts: those calls did not run
            conn.send_command("SCRIPT", "LOAD", source)  # type: ignore[no-untyped-call]
            conn.read_response()  # type: ignore[no-untyped-call]
            again = self.many(sha, source, [calls[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return replies

    def close(self) -> None:
        for conn in list(self._all):
            conn.disconnect()  # type: ignore[no-untyped-call]


class Script:
    def __init__(self, caller: ScriptCaller, source: str, prefix: str) -> None:
        self.caller = caller
        self.source = source
        self.prefix = prefix
        self.sha = _sha(source)

    def __call__(self, *args: Any) -> Any:
        return self.caller(self.sha, self.source, [self.prefix, *args])

    def many(self, calls: list[list[Any]]) -> list[Any]:
        """One call per item of `calls` (each the script's ARGV), pipelined."""
        return self.caller.many(self.sha, self.source, [[self.prefix, *args] for args in calls])


def demoted(exc: redis.RedisError) -> bool:
    """READONLY, bare or inside a script's error: this connection reaches a replica (a primary
    demoted by a failover). Keeping it would refuse every write until it breaks; dropped, the next
    one goes where the failover endpoint or the sentinels say the primary is. (redis-py's Sentinel
    connection does this for a bare READONLY only.)"""
    return isinstance(classify(exc), RedisReadOnly)


def cut_off(exc: redis.RedisError) -> bool:
    """`demoted`, or NOREPLICAS: a primary cut off from its replicas, e.g. one stopped past the
    sentinels' patience, which promoted another, and not yet told. The API drops such a connection
    too, so its submits reach the new primary at once instead of being refused until Sentinel
    converts the old one (measured: ~11 s of 503s in `make test-ha`)."""
    classified = classify(exc)
    return isinstance(classified, RedisReadOnly) or (
        isinstance(classified, RedisRefusesWrites) and "NOREPLICAS" in classified.reason
    )


def _sha(source: str) -> str:
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()  # what Redis names it by


@dataclass(frozen=True, slots=True)
class Replication:
    """Make each batch wait for `replicas` replicas (REDIS_MIN_REPLICAS), up to `timeout_ms`.

    `WAIT` covers the writes of its own connection, so it goes on the batch's connection after
    its calls, behind a `SET` of `marker` (with an expiry): a batch whose calls all found their
    task already there wrote nothing, and the marker's offset, later in the one replication
    stream than every earlier write, makes the WAIT cover the original write too."""

    replicas: int
    timeout_ms: int
    marker: str


class Batcher:
    """Concurrent calls of one script, sent as pipelines: one write and one read for many.

    Under load the API has many submits in flight at once; each one's own round trip through
    redis-py's asyncio client (pool, write, wake-up, read) cost the API process about as much
    CPU as the rest of the request. Here the first call starts a drain task and the calls that
    arrive while a pipeline is in flight ride the next one; a lone call goes out at once. Each
    call gets its own reply or error; a NOSCRIPT reply loads the script and re-sends those calls
    (they did not run). With `replication`, a batch's replies are given only once enough replicas
    acknowledged it; otherwise every call of the batch gets RedisNotReplicated.
    """

    MAX_BATCH = 256
    TIMEOUT_S = 10.0

    def __init__(
        self, client: aioredis.Redis, source: str, prefix: str, replication: Replication | None = None
    ) -> None:
        self.client = client
        self.replication = replication
        self.source = source
        self.sha = _sha(source)
        self.prefix = prefix
        self._queue: list[tuple[list[Any], asyncio.Future[Any]]] = []
        self._drain_task: asyncio.Task[None] | None = None

    async def __call__(self, *args: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(([self.prefix, *args], future))
        if self._drain_task is None:
            self._drain_task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self.MAX_BATCH]
                del self._queue[: self.MAX_BATCH]
                try:
                    replies = await self._send([args for args, _ in batch])
                except BaseException as exc:  # every caller of the batch gets the error
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), reply in zip(batch, replies, strict=True):
                    if future.done():  # the caller went away (request cancelled)
                        continue
                    if isinstance(reply, Exception):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
        finally:
            self._drain_task = None

    async def many(self, calls: list[list[Any]]) -> list[Any]:
        """One call per item of `calls` (each the script's ARGV after the prefix), all in ONE
        pipeline with one WAIT (with `replication`), not split at MAX_BATCH: a batch submit's
        items. -> their replies in order; an error reply is that item's result (not raised);
        too few replicas make every item's reply RedisNotReplicated."""
        if not calls:
            return []
        return await self._send([[self.prefix, *args] for args in calls])

    async def _send(self, calls: list[list[Any]]) -> list[Any]:
        replies = await self._pipeline(calls)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            await self.client.script_load(self.source)
            for i, reply in zip(missing, await self._pipeline([calls[i] for i in missing]), strict=True):
                replies[i] = reply
        return replies

    def _waited(self, replies: list[Any]) -> list[Any]:
        """The calls' replies, once the trailing SET and WAIT said enough replicas have them."""
        rep = self.replication
        if rep is None:
            return replies
        *replies, _, acked = replies
        if isinstance(acked, Exception):
            raise acked
        if int(acked) < rep.replicas:
            error = RedisNotReplicated(
                f"{acked} of REDIS_MIN_REPLICAS={rep.replicas} replicas confirmed the write within "
                f"{rep.timeout_ms} ms (WAIT)"
            )
            return [reply if isinstance(reply, Exception) else error for reply in replies]
        return replies

    async def _pipeline(self, calls: list[list[Any]]) -> list[Any]:
        # Straight on a pooled connection: one write of all the commands (packed by hiredis),
        # then their replies in order. An error reply is that call's result; a broken
        # connection fails the whole batch.
        # One timeout for the whole batch (cheaper than redis-py's per-read one): a stalled Redis
        # fails the batch's requests with a 503 instead of holding every submit.
        pool = self.client.connection_pool
        conn = None
        commands: list[tuple[Any, ...]] = [("EVALSHA", self.sha, 1, *args) for args in calls]
        rep = self.replication
        if rep is not None:
            commands += [("SET", rep.marker, "wait", "PX", 10_000), ("WAIT", rep.replicas, rep.timeout_ms)]
        try:
            async with asyncio.timeout(self.TIMEOUT_S + (rep.timeout_ms / 1000 if rep else 0)):
                conn = await pool.get_connection()  # may connect (and handshake) first
                await conn.send_packed_command(b"".join([hiredis.pack_command(c) for c in commands]))
                replies: list[Any] = []
                for _ in commands:
                    try:
                        replies.append(await conn.read_response())
                    except redis.ResponseError as exc:
                        replies.append(exc)
                if any(isinstance(reply, redis.ResponseError) and cut_off(reply) for reply in replies):
                    await conn.disconnect()
                return self._waited(replies)
        except BaseException as exc:
            if conn is not None:
                await conn.disconnect()
            if isinstance(exc, TimeoutError):
                raise redis.TimeoutError(f"no reply from Redis within {self.TIMEOUT_S:g}s") from None
            raise
        finally:
            if conn is not None:
                await pool.release(conn)
