"""The development mailbox: a local SMTP sink (aiosmtpd) that keeps what it receives in Redis.

`make run` starts it when ENV=development and SMTP_URL is unset (launcher.py), so the `email` kind
works out of the box and the dashboard's Mailbox page shows what was sent. It listens on 127.0.0.1
only, accepts any sender and recipient, relays nothing, and keeps the last MAILBOX_CAP messages
(storage/mailbox.py). Production never starts it.
"""

from __future__ import annotations

import socket
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import redis
from aiosmtpd.controller import Controller
from loguru import logger

from queue_system.storage import mailbox
from queue_system.storage.connection import RedisTarget, sync_client

DEV_RECIPIENT = "dev@localhost"
TASK_HEADER = "X-Queue-System-Task"


def parse(mail_from: str, rcpt_tos: list[str], content: bytes) -> mailbox.MailboxMessage:
    message = message_from_bytes(content, policy=policy.default)
    assert isinstance(message, EmailMessage)  # policy.default builds EmailMessage
    part = message.get_body(preferencelist=("plain", "html"))
    body = part.get_content() if part is not None else ""
    return mailbox.MailboxMessage(
        received_at=int(time.time() * 1000),
        mail_from=str(message.get("From") or mail_from),
        to=list(rcpt_tos),
        subject=str(message.get("Subject") or ""),
        body=str(body)[: mailbox.MAX_BODY_CHARS],
        task_id=_header(message, TASK_HEADER),
        message_id=_header(message, "Message-ID"),
    )


def _header(message: EmailMessage, name: str) -> str | None:
    value = message.get(name)
    return str(value) if value is not None else None


class _Handler:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        try:
            message = parse(envelope.mail_from, envelope.rcpt_tos, envelope.content)
            # A blocking call on the sink's own loop thread: one developer's mail, not a hot path.
            mailbox.store(self.client, self.prefix, message)
        except Exception as exc:  # a 4xx makes the sender retry; the sink keeps running
            logger.warning("mailbox: could not keep a message: {}", exc)
            return "451 mailbox unavailable, try again"
        return "250 kept in the development mailbox"


class DevMailbox:
    """`start()` -> the SMTP_URL to give the processes that send; `stop()` when done."""

    def __init__(self, target: RedisTarget | str, prefix: str = "qs", host: str = "127.0.0.1") -> None:
        self.client = sync_client(target, socket_connect_timeout=5)
        self.host = host
        self.port = _free_port(host)
        self._controller = Controller(_Handler(self.client, prefix), hostname=host, port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def start(self) -> str:
        self._controller.start()
        return self.url

    def stop(self) -> None:
        self._controller.stop()
        self.client.close()


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
