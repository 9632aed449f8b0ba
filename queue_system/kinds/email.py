"""The `email` kind: really sends over SMTP (stdlib `smtplib`), configured by SMTP_URL and EMAIL_FROM.

Payload: `{"to", "subject", "body"}` with optional `cc`, `reply_to` and `html` (`to` and `cc`: one
address or a list), or a plain string, sent to EMAIL_DEFAULT_TO with its first line as the subject.
A plain string is turned into the full form at submit time, so the stored task names the recipients.

Outcomes: SMTP 4xx replies and connection errors are transient; 5xx replies, a server lacking
STARTTLS/AUTH and an unverifiable certificate are permanent; no SMTP_URL fails the task at once.

Settings reach the handler through `configure_email(settings.email)`, called once per process at
boot, by the worker runtime (to send) and the API (to resolve EMAIL_DEFAULT_TO at submit time).
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, parseaddr
from typing import Any

import msgspec

from queue_system.kinds.registry import PermanentError, RunContext, TransientError, task_kind
from queue_system.kinds.utility import payload_error
from queue_system.settings import EmailSettings, SmtpServer

MAX_SUBJECT_FROM_TEXT = 78  # a plain-string payload's first line, cut to one RFC 5322 line


class Email(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    to: str | list[str]
    subject: str
    body: str
    cc: str | list[str] | None = None
    reply_to: str | None = None
    html: str | None = None  # sent as a multipart/alternative beside the plain body


@dataclass(frozen=True, slots=True)
class _Config:
    settings: EmailSettings
    server: SmtpServer | None
    local_hostname: str | None = None  # resolved once: smtplib would look it up per connection


_config = _Config(EmailSettings(), None)


def configure_email(settings: EmailSettings) -> None:
    """Give the `email` kind its settings; call once per process at boot, before tasks run."""
    global _config
    server = settings.smtp
    _config = _Config(settings, server, socket.getfqdn() if server else None)


# --- validation (at submit time, and again when the task runs) ---------------------------------


def check_email(payload: Email | str) -> Email:
    mail = _from_text(payload) if isinstance(payload, str) else payload
    _check_addresses("to", mail.to)
    if mail.cc is not None:
        _check_addresses("cc", mail.cc)
    if mail.reply_to is not None:
        _check_address("reply_to", mail.reply_to)
    if "\r" in mail.subject or "\n" in mail.subject:
        raise payload_error("subject", "must be a single line")
    return mail


def _from_text(text: str) -> Email:
    default_to = _config.settings.default_to
    if not default_to:
        raise payload_error(
            "to",
            'required: a plain-string email goes to EMAIL_DEFAULT_TO, which is not set; send {"to", ...}',
        )
    first_line = text.strip().split("\n", 1)[0].strip()
    subject = first_line[:MAX_SUBJECT_FROM_TEXT] or "(no subject)"
    return Email(to=list(default_to), subject=subject, body=text)


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


# --- sending -----------------------------------------------------------------------------------


@task_kind("email", payload=Email | str, check=check_email)
def send_email(mail: Email, ctx: RunContext) -> dict[str, Any]:
    config = _config
    if config.server is None:
        raise PermanentError("SMTP is not configured: set SMTP_URL")
    message = build_message(mail, config.settings.email_from, ctx.task_id)
    recipients = list(dict.fromkeys(parseaddr(a)[1] for a in _as_list(mail.to) + _as_list(mail.cc)))
    refused = _deliver(config.server, config, message, recipients)
    result: dict[str, Any] = {
        "message_id": str(message["Message-ID"]),
        "accepted": [r for r in recipients if r not in refused],
    }
    if refused:  # some recipients took it: retrying would send them a second copy
        result["refused"] = {addr: _reply(code, text) for addr, (code, text) in refused.items()}
    return result


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
    message.set_content(mail.body)
    if mail.html is not None:
        message.add_alternative(mail.html, subtype="html")
    return message


def _deliver(
    server: SmtpServer, config: _Config, message: EmailMessage, recipients: list[str]
) -> dict[str, tuple[int, bytes]]:
    """Send; returns the recipients the server refused while accepting the others."""
    timeout = config.settings.timeout_ms / 1000
    sender = parseaddr(config.settings.email_from)[1]
    where = f"{server.host}:{server.port}"
    try:
        with _connect(server, timeout, config.local_hostname) as smtp:
            if server.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if server.username is not None:
                smtp.login(server.username, server.password or "")
            return smtp.send_message(message, from_addr=sender, to_addrs=recipients)
    except smtplib.SMTPRecipientsRefused as exc:
        raise _all_refused(exc.recipients) from None
    except smtplib.SMTPResponseException as exc:
        stage = _STAGES.get(type(exc), "SMTP error")
        reason = f"{stage} by {where}: {_reply(exc.smtp_code, exc.smtp_error)}"
        raise _classify(exc.smtp_code, reason) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise PermanentError(f"SMTP server {where} does not support what SMTP_URL asks for: {exc}") from None
    except ssl.SSLCertVerificationError as exc:
        raise PermanentError(f"TLS certificate of {where} not trusted: {exc.verify_message}") from None
    except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timed out, name not found...
        raise TransientError(
            f"cannot talk to SMTP server {where}: {str(exc) or type(exc).__name__}"
        ) from None


def _connect(server: SmtpServer, timeout: float, local_hostname: str | None) -> smtplib.SMTP:
    if server.ssl:
        context = ssl.create_default_context()
        return smtplib.SMTP_SSL(
            server.host, server.port, local_hostname=local_hostname, timeout=timeout, context=context
        )
    return smtplib.SMTP(server.host, server.port, local_hostname=local_hostname, timeout=timeout)


_STAGES: dict[type[Exception], str] = {
    smtplib.SMTPConnectError: "connection refused",
    smtplib.SMTPHeloError: "HELO refused",
    smtplib.SMTPAuthenticationError: "login refused",
    smtplib.SMTPSenderRefused: "sender refused",
    smtplib.SMTPDataError: "message refused",
}


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".strip()


def _is_permanent(code: int) -> bool:
    """5xx: the server will not take it, ever. 4xx (and anything odd): try again later."""
    return 500 <= code <= 599


def _classify(code: int, text: str) -> Exception:
    return PermanentError(text) if _is_permanent(code) else TransientError(text)


def _all_refused(refused: dict[str, tuple[int, bytes]]) -> Exception:
    """Every recipient refused: permanent only if no refusal was temporary."""
    detail = "; ".join(f"{addr}: {_reply(code, text)}" for addr, (code, text) in refused.items())
    text = f"all recipients refused: {detail}"
    if all(_is_permanent(code) for code, _ in refused.values()):
        return PermanentError(text)
    return TransientError(text)
