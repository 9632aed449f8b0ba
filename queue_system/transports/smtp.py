"""SMTP transport: send one message over stdlib `smtplib` and classify the outcome.

Outcomes: SMTP 4xx replies and connection errors are transient; 5xx replies, a server lacking
STARTTLS/AUTH and an unverifiable certificate are permanent. Some recipients refused while others
took the message is a success that lists the refusals: retrying would send the others a second copy.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from queue_system.domain.models import AttemptResult, Outcome
from queue_system.domain.words import seconds
from queue_system.transports.outcome import describe


@dataclass(frozen=True, slots=True)
class SmtpConnection:
    """Where and how to connect: SMTP_URL and EMAIL_TIMEOUT, resolved once per process."""

    host: str
    port: int
    ssl: bool = False  # TLS from the first byte (smtps://)
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in logs
    timeout_s: float = 30.0
    local_hostname: str | None = None  # resolved once: smtplib would look it up per connection


def send(server: SmtpConnection, message: EmailMessage, sender: str, recipients: list[str]) -> AttemptResult:
    """Send `message` from the envelope address `sender`; the result names what was accepted."""
    where = f"{server.host}:{server.port}"
    try:
        with _connect(server) as smtp:
            if server.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if server.username is not None:
                smtp.login(server.username, server.password or "")
            refused = smtp.send_message(message, from_addr=sender, to_addrs=recipients)
    except smtplib.SMTPRecipientsRefused as exc:
        return _all_refused(exc.recipients)
    except smtplib.SMTPResponseException as exc:
        stage = _STAGES.get(type(exc), "SMTP error")
        return _classify(exc.smtp_code, f"{stage} by {where}: {_reply(exc.smtp_code, exc.smtp_error)}")
    except smtplib.SMTPNotSupportedError as exc:
        return _permanent(f"SMTP server {where} does not support what SMTP_URL asks for: {exc}")
    except ssl.SSLCertVerificationError as exc:
        return _permanent(f"TLS certificate of {where} not trusted: {exc.verify_message}")
    except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timed out, name not found...
        return AttemptResult(Outcome.TRANSIENT, error=_unreachable(exc, server, where), detail=describe(exc))
    result: dict[str, Any] = {
        "message_id": str(message["Message-ID"]),
        "accepted": [r for r in recipients if r not in refused],
    }
    if refused:  # some recipients took it: retrying would send them a second copy
        result["refused"] = {addr: _reply(code, text) for addr, (code, text) in refused.items()}
    return AttemptResult(Outcome.SUCCESS, result=result)


def _unreachable(exc: BaseException, server: SmtpConnection, where: str) -> str:
    """What went wrong talking to the server, as a person says it; the library's text is the detail.
    smtplib turns a timeout while reading a reply into SMTPServerDisconnected: the chain says which."""
    chain = _chain(exc)
    if any(isinstance(e, TimeoutError) for e in chain):  # socket.timeout is TimeoutError
        return f"timed out after {seconds(server.timeout_s)} talking to SMTP server {where}"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return f"connection refused by SMTP server {where}"
    dns = next((e for e in chain if isinstance(e, socket.gaierror)), None)
    if dns is not None:
        if dns.errno == socket.EAI_NONAME:
            return f"DNS name not found: {server.host}"
        return f"DNS lookup of {server.host} failed ({dns.strerror})"
    if any(isinstance(e, smtplib.SMTPServerDisconnected | ConnectionResetError) for e in chain):
        return f"SMTP server {where} closed the connection"
    return f"cannot talk to SMTP server {where}: {str(exc) or type(exc).__name__}"


def _chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(found) < 8:
        found.append(seen)
        seen = seen.__cause__ or seen.__context__
    return found


def _connect(server: SmtpConnection) -> smtplib.SMTP:
    if server.ssl:
        context = ssl.create_default_context()
        return smtplib.SMTP_SSL(
            server.host,
            server.port,
            local_hostname=server.local_hostname,
            timeout=server.timeout_s,
            context=context,
        )
    return smtplib.SMTP(
        server.host, server.port, local_hostname=server.local_hostname, timeout=server.timeout_s
    )


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


def _permanent(error: str) -> AttemptResult:
    return AttemptResult(Outcome.PERMANENT, error=error)


def _is_permanent(code: int) -> bool:
    """5xx: the server will not take it, ever. 4xx (and anything odd): try again later."""
    return 500 <= code <= 599


def _classify(code: int, error: str) -> AttemptResult:
    return AttemptResult(Outcome.PERMANENT if _is_permanent(code) else Outcome.TRANSIENT, error=error)


def _all_refused(refused: dict[str, tuple[int, bytes]]) -> AttemptResult:
    """Every recipient refused: permanent only if no refusal was temporary."""
    detail = "; ".join(f"{addr}: {_reply(code, text)}" for addr, (code, text) in refused.items())
    permanent = all(_is_permanent(code) for code, _ in refused.values())
    return AttemptResult(
        Outcome.PERMANENT if permanent else Outcome.TRANSIENT, error=f"all recipients refused: {detail}"
    )
