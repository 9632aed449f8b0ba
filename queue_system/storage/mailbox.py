"""The development mailbox in Redis: what the local SMTP sink (`queue_system/local/mailbox.py`) received.

    Keys.mailbox  list   newest first, JSON per message; capped at MAILBOX_CAP (LTRIM) and expiring
                         MAILBOX_TTL_S after the last message (the sink owns it, the dashboard reads it)

Only `make run` in development writes here; production never starts the sink.
"""

from __future__ import annotations

from typing import Any

import msgspec
import redis
import redis.asyncio as aioredis

from queue_system.storage.codec import decode_each
from queue_system.storage.keys import Keys

MAILBOX_CAP = 200
MAILBOX_TTL_S = 7 * 86_400
MAX_BODY_CHARS = 64 * 1024  # a message's text kept; the rest is cut (a dev mailbox, not an archive)


class MailboxMessage(msgspec.Struct, omit_defaults=True):
    received_at: int  # epoch ms
    mail_from: str
    to: list[str]
    subject: str
    body: str
    task_id: str | None = None  # the X-Queue-System-Task header of the email kind's messages
    message_id: str | None = None


def mailbox_key(prefix: str) -> str:
    return Keys(prefix).mailbox


def store(client: redis.Redis, prefix: str, message: MailboxMessage, cap: int = MAILBOX_CAP) -> None:
    """Newest first; the list never holds more than `cap` messages."""
    key = mailbox_key(prefix)
    with client.pipeline(transaction=True) as pipe:
        pipe.lpush(key, msgspec.json.encode(message))
        pipe.ltrim(key, 0, cap - 1)
        pipe.expire(key, MAILBOX_TTL_S)
        pipe.execute()


async def read(client: aioredis.Redis, prefix: str, limit: int = MAILBOX_CAP) -> list[MailboxMessage]:
    raw: list[Any] = await client.lrange(mailbox_key(prefix), 0, limit - 1)  # type: ignore[misc]
    return decode_each(raw, MailboxMessage)


class AsyncMailboxReader:
    """`read` bound to one client and key set: what the dashboard's mailbox page is given."""

    def __init__(self, client: aioredis.Redis, keys: Keys | None = None) -> None:
        self._client = client
        self._prefix = (keys or Keys()).prefix

    async def read(self, limit: int = MAILBOX_CAP) -> list[MailboxMessage]:
        return await read(self._client, self._prefix, limit)
