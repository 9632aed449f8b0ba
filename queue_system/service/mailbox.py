"""The development mailbox as the dashboard reads it (`make run`'s SMTP sink writes it:
local/mailbox.py). Its reader is storage's, built by api/app.py and named here, so the API never
imports storage. (A class, not a Protocol: Litestar checks a dependency's type with isinstance.)"""

from __future__ import annotations

from queue_system.storage.mailbox import AsyncMailboxReader
from queue_system.storage.mailbox import MailboxMessage as MailboxMessage

Mailbox = AsyncMailboxReader  # read(limit) -> the newest messages, newest first
