"""The `email` kind: really sends over SMTP (`transports/smtp.py`), configured by SMTP_URL and EMAIL_FROM.

Payload: `{"to", "subject", "body"}` with optional `cc`, `reply_to` and `html` (`to` and `cc`: one
address or a list), or a plain string, sent to EMAIL_DEFAULT_TO with its first line as the subject.
A plain string is turned into the full form at submit time, so the stored task names the recipients.

Outcomes are the SMTP transport's (4xx and connection errors transient, 5xx permanent); no
SMTP_URL fails the task at once.

The kind is built from the settings, `email_kind(settings.email)`, by `load_kinds` in each
composition root: the API needs EMAIL_DEFAULT_TO at submit time, the worker the server to send to.
"""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, parseaddr

import msgspec

from queue_system.config.settings import EmailSettings
from queue_system.domain.models import AttemptResult
from queue_system.errors import PermanentError
from queue_system.kinds.registry import RunContext, TaskKind, backoff_policy, payload_error
from queue_system.transports import smtp

MAX_SUBJECT_FROM_TEXT = 78  # a plain-string payload's first line, cut to one RFC 5322 line


class Email(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    to: str | list[str]
    subject: str
    body: str
    cc: str | list[str] | None = None
    reply_to: str | None = None
    html: str | None = None  # sent as a multipart/alternative beside the plain body


@dataclass(frozen=True, slots=True)
class Mailer:
    """The `email` kind's settings, resolved once: its checks and its handler are methods."""

    settings: EmailSettings
    server: smtp.SmtpConnection | None  # None: SMTP_URL is not set

    @classmethod
    def from_settings(cls, settings: EmailSettings) -> Mailer:
        url = settings.smtp
        if url is None:
            return cls(settings, None)
        server = smtp.SmtpConnection(
            host=url.host,
            port=url.port,
            ssl=url.ssl,
            starttls=url.starttls,
            username=url.username,
            password=url.password,
            timeout_s=settings.timeout_ms / 1000,
            local_hostname=socket.getfqdn(),
        )
        return cls(settings, server)

    def check(self, payload: Email | str) -> Email:
        """At submit time (and for the stored form when the task runs)."""
        mail = self._from_text(payload) if isinstance(payload, str) else payload
        return check_email(mail)

    def _from_text(self, text: str) -> Email:
        default_to = self.settings.default_to
        if not default_to:
            raise payload_error(
                "to",
                'required: a plain-string email goes to EMAIL_DEFAULT_TO, which is not set; send {"to", ...}',
            )
        first_line = text.strip().split("\n", 1)[0].strip()
        subject = first_line[:MAX_SUBJECT_FROM_TEXT] or "(no subject)"
        return Email(to=list(default_to), subject=subject, body=text)

    def send(self, mail: Email, ctx: RunContext) -> AttemptResult:
        if self.server is None:
            raise PermanentError("SMTP is not configured: set SMTP_URL")
        message = build_message(mail, self.settings.email_from, ctx.task_id)
        recipients = list(dict.fromkeys(parseaddr(a)[1] for a in _as_list(mail.to) + _as_list(mail.cc)))
        return smtp.send(self.server, message, parseaddr(self.settings.email_from)[1], recipients)


def email_kind(settings: EmailSettings) -> TaskKind:
    mailer = Mailer.from_settings(settings)
    return TaskKind("email", Email | str, mailer.send, backoff_policy, mailer.check)


# --- validation (at submit time, and again when the task runs) ---------------------------------


def check_email(mail: Email) -> Email:
    _check_addresses("to", mail.to)
    if mail.cc is not None:
        _check_addresses("cc", mail.cc)
    if mail.reply_to is not None:
        _check_address("reply_to", mail.reply_to)
    if "\r" in mail.subject or "\n" in mail.subject:
        raise payload_error("subject", "must be a single line")
    return mail


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


def _check_addresses(path: str, value: str | list[str]) -> None:
    if isinstance(value, str):
        _check_address(path, value)
        return
    if not value:
        raise payload_error(path, "needs at least one address")
    for i, address in enumerate(value):
        _check_address(f"{path}[{i}]", address)


def _check_address(path: str, address: str) -> None:
    """Minimal: one address, with an @, on one line (so it cannot inject headers)."""
    if "\r" in address or "\n" in address:
        raise payload_error(path, "must not contain line breaks")
    parsed = getaddresses([address])
    if len(parsed) != 1 or "@" not in parsed[0][1]:
        raise payload_error(path, f"{address!r} is not one email address")


# --- the message ---------------------------------------------------------------------------------


def build_message(mail: Email, sender: str, task_id: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(_as_list(mail.to))
    if mail.cc:
        message["Cc"] = ", ".join(_as_list(mail.cc))
    if mail.reply_to:
        message["Reply-To"] = mail.reply_to
    message["Subject"] = mail.subject
    message["Date"] = formatdate(usegmt=True)
    # The same id on every attempt: a receiver can drop the copy a retry sends after a lost reply.
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<{uuid.uuid5(uuid.NAMESPACE_URL, f'queue_system:{task_id}').hex}@{domain}>"
    # Which task sent it (the development mailbox shows it; a receiver can trace a message back).
    message["X-Queue-System-Task"] = task_id
    message.set_content(mail.body)
    if mail.html is not None:
        message.add_alternative(mail.html, subtype="html")
    return message
