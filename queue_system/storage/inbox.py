"""The development inbox in Redis: what the API's own webhook receiver (`POST /dev/inbox/{name}`)
received, for `make run` in development (DEV_INBOX).

    Keys.inbox(name)  list  newest first, JSON per request; at most INBOX_CAP, expiring INBOX_TTL_MS
                            after its last request
    Keys.inboxes      zset  name -> last request ms; at most MAX_INBOXES (the least recently used is
                            dropped with its list), expiring INBOX_TTL_MS after the last request

Every bound is here, so a loop posting to fresh names cannot fill Redis: MAX_INBOXES x INBOX_CAP
requests of at most MAX_BODY_BYTES each.
"""

from __future__ import annotations

from typing import Any

import msgspec
import redis.asyncio as aioredis

from queue_system.storage.keys import Keys

INBOX_CAP = 50  # requests kept per inbox
MAX_INBOXES = 20
INBOX_TTL_MS = 24 * 3_600_000
MAX_BODY_BYTES = 16 * 1024  # of a request's body kept (cut beyond, with `truncated`)
MAX_HEADERS = 64  # headers kept of a request
MAX_HEADER_VALUE = 2048  # characters kept of a header's value


class InboxRequest(msgspec.Struct, omit_defaults=True):
    received_at: int  # epoch ms
    method: str
    path: str  # with its query string
    headers: list[tuple[str, str]]  # as received, in order (names may repeat)
    body: str  # decoded as UTF-8 (undecodable bytes replaced), cut at MAX_BODY_BYTES
    body_bytes: int  # the size received
    # "verified", "invalid" (no entry matches WEBHOOK_SIGNING_SECRET, or too old), "unsigned"
    # (no `webhook-signature`), "unchecked" (signed, but WEBHOOK_SIGNING_SECRET is unset)
    signature: str
    truncated: bool = False
    task_id: str | None = None  # from `webhook-id: msg_<task id>`, our deliveries' id


class InboxSummary(msgspec.Struct):
    name: str
    requests: int
    last_received_at: int  # epoch ms


async def store(client: aioredis.Redis, keys: Keys, name: str, request: InboxRequest) -> None:
    """Newest first; the inbox and the set of inboxes stay within their caps."""
    key = keys.inbox(name)
    async with client.pipeline(transaction=True) as pipe:
        pipe.lpush(key, msgspec.json.encode(request))
        pipe.ltrim(key, 0, INBOX_CAP - 1)
        pipe.pexpire(key, INBOX_TTL_MS)
        pipe.zadd(keys.inboxes, {name: request.received_at})
        pipe.pexpire(keys.inboxes, INBOX_TTL_MS)
        pipe.zrange(keys.inboxes, 0, -(MAX_INBOXES + 1))  # beyond the newest MAX_INBOXES
        pipe.zremrangebyrank(keys.inboxes, 0, -(MAX_INBOXES + 1))
        replies: list[Any] = await pipe.execute()
    dropped = replies[5]
    if dropped:  # their lists expire anyway; dropped now so the cap holds
        await client.delete(*(keys.inbox(str(old)) for old in dropped))


async def names(client: aioredis.Redis, keys: Keys) -> list[InboxSummary]:
    """The inboxes, most recently used first."""
    rows: list[tuple[Any, float]] = await client.zrevrange(keys.inboxes, 0, MAX_INBOXES - 1, withscores=True)
    if not rows:
        return []
    async with client.pipeline(transaction=False) as pipe:
        for name, _ in rows:
            pipe.llen(keys.inbox(str(name)))
        counts: list[int] = await pipe.execute()
    return [
        InboxSummary(str(name), count, int(score))
        for (name, score), count in zip(rows, counts, strict=True)
        if count
    ]


async def read(client: aioredis.Redis, keys: Keys, name: str, limit: int = INBOX_CAP) -> list[InboxRequest]:
    raw: list[Any] = await client.lrange(keys.inbox(name), 0, limit - 1)  # type: ignore[misc]
    out: list[InboxRequest] = []
    for item in raw:
        try:
            out.append(msgspec.json.decode(item, type=InboxRequest))
        except msgspec.DecodeError:
            continue  # not ours; skip rather than break the page
    return out


class AsyncInboxStore:
    """The functions above bound to one client and key set: what the service holds (service/inbox.py)."""

    def __init__(self, client: aioredis.Redis, keys: Keys | None = None) -> None:
        self._client = client
        self._keys = keys or Keys()

    async def store(self, name: str, request: InboxRequest) -> None:
        await store(self._client, self._keys, name, request)

    async def names(self) -> list[InboxSummary]:
        return await names(self._client, self._keys)

    async def read(self, name: str, limit: int = INBOX_CAP) -> list[InboxRequest]:
        return await read(self._client, self._keys, name, limit)
