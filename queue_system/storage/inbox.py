"""The development inbox in Redis: what the API's own webhook receiver (`POST /dev/inbox/{name}`)
received, for `make run` in development (DEV_INBOX).

    Keys.inbox(name)  list  newest first, JSON per request; at most INBOX_CAP, expiring INBOX_TTL_MS
                            after its last request
    Keys.inboxes      zset  name -> last request ms; at most MAX_INBOXES (the least recently used is
                            dropped with its list), expiring INBOX_TTL_MS after the last request

Every bound is here, so a loop posting to fresh names cannot fill Redis: MAX_INBOXES x INBOX_CAP
requests of at most MAX_BODY_BYTES each. A request is stored and the caps kept by one script
(STORE_LUA).
"""

from __future__ import annotations

from typing import Any

import msgspec
import redis.asyncio as aioredis

from queue_system.storage.codec import decode_each
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


# KEYS[1] the inbox's list  KEYS[2] the set of inboxes (Keys.inboxes)
# ARGV[1] the request, JSON  ARGV[2] the inbox's name  ARGV[3] received_at ms  ARGV[4] INBOX_CAP
# ARGV[5] MAX_INBOXES  ARGV[6] INBOX_TTL_MS  ARGV[7] the head of an inbox's key (Keys.inbox(""))
# Returns how many inboxes were dropped (the least recently used beyond MAX_INBOXES, with their lists).
STORE_LUA = """
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[4]) - 1)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
local beyond = -(tonumber(ARGV[5]) + 1)
local dropped = redis.call('ZRANGE', KEYS[2], 0, beyond)
for _, old in ipairs(dropped) do
  redis.call('DEL', ARGV[7] .. old)
end
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, beyond)
return #dropped
"""


class AsyncInboxStore:
    """The development inboxes, for the API (redis.asyncio client); service/inbox.py holds one."""

    def __init__(self, client: aioredis.Redis, keys: Keys | None = None) -> None:
        self._client = client
        self._keys = keys or Keys()
        self._store = client.register_script(STORE_LUA)

    async def store(self, name: str, request: InboxRequest) -> None:
        """Newest first; the inbox and the set of inboxes stay within their caps (one script)."""
        k = self._keys
        body = msgspec.json.encode(request)
        args: list[bytes | str | int] = [body, name, request.received_at, INBOX_CAP, MAX_INBOXES]
        args += [INBOX_TTL_MS, k.inbox("")]
        await self._store(keys=[k.inbox(name), k.inboxes], args=args)

    async def names(self) -> list[InboxSummary]:
        """The inboxes, most recently used first."""
        k = self._keys
        rows: list[tuple[Any, float]] = await self._client.zrevrange(
            k.inboxes, 0, MAX_INBOXES - 1, withscores=True
        )
        if not rows:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for name, _ in rows:
                pipe.llen(k.inbox(str(name)))
            counts: list[int] = await pipe.execute()
        return [
            InboxSummary(str(name), count, int(score))
            for (name, score), count in zip(rows, counts, strict=True)
            if count
        ]

    async def read(self, name: str, limit: int = INBOX_CAP) -> list[InboxRequest]:
        raw: list[Any] = await self._client.lrange(self._keys.inbox(name), 0, limit - 1)  # type: ignore[misc]
        return decode_each(raw, InboxRequest)
