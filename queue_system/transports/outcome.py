"""How an HTTP exchange becomes an attempt's result, for both senders (http.py: httpx, the sync
handler; async_http.py: aiohttp, the worker's loop), as httpx's `_transports/default.py` keeps one
exception map for its sync and async transports.

- An answer (`answered`): 2xx -> success; 408/425/429/5xx -> transient, honouring `Retry-After`;
  any other status -> permanent. Only a bounded prefix of the body is read (READ_LIMIT) and kept
  (`response_text`: text, or a `<binary: ...>` marker).
- No answer (`failed`): each sender names the stage its library failed at (`Failure`); the
  operating system's cause under the library's exception (refused, reset, DNS, TLS), found by
  walking `__cause__`, says the rest. A failure to reach the host (DNS, refused, connect timeout,
  TLS) is `connect_failed`: the host's breaker counts it, not the endpoint's. Too many redirects
  and a connection the egress guard refuses are permanent.

`error` is what happened as a person says it ("connection refused by 127.0.0.1:1"); `detail`
keeps the library's own text for the attempt's history. Every wording is listed in
docs/concepts/attempts-and-errors.md (tests/test_attempt_words.py produces each for real).
"""

from __future__ import annotations

import email.utils
import socket
import ssl
import time
from collections.abc import Mapping
from enum import Enum
from typing import TypeVar

from queue_system.domain.destinations import Destination
from queue_system.domain.models import MAX_RESPONSE_BODY, AttemptResult, Outcome
from queue_system.domain.words import seconds
from queue_system.transports.egress import EgressBlocked

TRANSIENT_STATUS = frozenset({408, 425, 429})
# Read at most this much of a response; a larger body closes the connection instead of draining it.
READ_LIMIT = 64 * 1024

E = TypeVar("E", bound=BaseException)


class Failure(Enum):
    """The stage at which an exchange failed, as the sender's library tells it."""

    CONNECT = "connect"  # no connection (the cause says why: refused, DNS, TLS...)
    CONNECT_TIMEOUT = "connect_timeout"
    RESPONSE_TIMEOUT = "response_timeout"  # connected, the answer did not come in time
    CLOSED = "closed"  # the receiver closed the connection before a whole answer
    REDIRECTS = "redirects"
    NETWORK = "network"  # anything else on the wire


def answered(
    code: int, retry_after: str | None, body: bytes, content_type: str | None = None, total: int | None = None
) -> AttemptResult:
    """The outcome of a response with status `code` (`total`: its Content-Length, when known)."""
    text = response_text(body, content_type, total)
    if 200 <= code < 300:
        return AttemptResult(
            Outcome.SUCCESS, result={"status_code": code}, status_code=code, response_body=text
        )
    error = f"HTTP {code} from the receiver"
    if code in TRANSIENT_STATUS or code >= 500:
        return AttemptResult(
            Outcome.TRANSIENT,
            error=error,
            status_code=code,
            response_body=text,
            retry_after_ms=parse_retry_after(retry_after),
        )
    return AttemptResult(Outcome.PERMANENT, error=error, status_code=code, response_body=text)


def answered_with(code: int, headers: Mapping[str, str], body: bytes) -> AttemptResult:
    """`answered`, its headers read from the response's (httpx's and aiohttp's both look a name up
    without regard to case): what either sender calls with the body prefix it read."""
    return answered(
        code,
        headers.get("Retry-After"),
        body,
        headers.get("Content-Type"),
        content_length(headers.get("Content-Length")),
    )


def failed(failure: Failure, exc: BaseException, url: str, timeout_s: float) -> AttemptResult:
    """The outcome of an exchange that raised `exc` at stage `failure`, `timeout_s` its budget
    (for a connect timeout: the connect's own share of it)."""
    where = Destination.of_url(url)
    detail = describe(exc)
    blocked = _cause(exc, EgressBlocked)
    if blocked is not None:  # its message says it all: egress blocked: <host> resolved to ...
        return AttemptResult(Outcome.PERMANENT, error=str(blocked), detail=detail)
    if failure is Failure.REDIRECTS:
        return AttemptResult(Outcome.PERMANENT, error="too many redirects", detail=detail)
    if failure is Failure.CONNECT_TIMEOUT:
        error = f"timed out after {seconds(timeout_s)} connecting to {where.address}"
        return AttemptResult(Outcome.TRANSIENT, error=error, connect_failed=True, detail=detail)
    if failure is Failure.RESPONSE_TIMEOUT:
        error = f"timed out after {seconds(timeout_s)} waiting for the response"
        return AttemptResult(Outcome.TRANSIENT, error=error, detail=detail)
    unreachable = _unreachable(exc, where)
    if unreachable is not None:
        return AttemptResult(Outcome.TRANSIENT, error=unreachable, connect_failed=True, detail=detail)
    if _cause(exc, ConnectionResetError) is not None:
        error = f"connection reset by the receiver ({where.address})"
    elif failure is Failure.CLOSED:
        error = "connection closed by the receiver before an answer"
    elif failure is Failure.CONNECT:
        error = f"could not connect to {where.address}"
        return AttemptResult(Outcome.TRANSIENT, error=error, connect_failed=True, detail=detail)
    else:
        error = f"network error talking to {where.address}"
    return AttemptResult(Outcome.TRANSIENT, error=error, detail=detail)


def _unreachable(exc: BaseException, where: Destination) -> str | None:
    """The words for a host that cannot be reached, from the cause under `exc`; None otherwise."""
    cert = _cause(exc, ssl.SSLCertVerificationError)
    if cert is not None:
        # aiohttp's ClientConnectorCertificateError is one too, without the attributes: the
        # error it wraps (`certificate_error`) has them.
        inner = getattr(cert, "certificate_error", cert)
        why = getattr(inner, "verify_message", None) or getattr(inner, "reason", None) or "not trusted"
        return f"TLS certificate not valid for {where.host} ({why})"
    tls = _cause(exc, ssl.SSLError)
    if tls is not None:
        return (
            f"TLS handshake with {where.address} failed ({tls.reason or tls.strerror or 'no reason given'})"
        )
    dns = _cause(exc, socket.gaierror)
    if dns is not None:
        if dns.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            return f"DNS name not found: {where.host}"
        return f"DNS lookup of {where.host} failed ({dns.strerror})"
    if _cause(exc, ConnectionRefusedError) is not None:
        return f"connection refused by {where.address}"
    return None


def _cause(exc: BaseException, kind: type[E]) -> E | None:
    """`exc` or the first exception under it (its `__cause__`, else `__context__`) of type `kind`."""
    seen: BaseException | None = exc
    for _ in range(16):  # a chain is a few links long; a cycle must not hang a delivery
        if seen is None:
            return None
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def describe(exc: BaseException) -> str:
    """The library's own account: each link of the chain as `Type: message`, outermost first."""
    links: list[str] = []
    seen: BaseException | None = exc
    while seen is not None and len(links) < 4:
        text = str(seen)
        links.append(f"{type(seen).__name__}: {text}" if text else type(seen).__name__)
        seen = seen.__cause__ or seen.__context__
    return " <- ".join(links)


# Content types shown as text; anything else (images, archives, octet-stream...) is a marker.
_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/problem+",
    "application/x-www-form",
)


def response_text(body: bytes, content_type: str | None, total: int | None = None) -> str:
    """What an attempt keeps of a response: its first MAX_RESPONSE_BODY bytes as text, or for a
    binary one `<binary: 2,345 bytes, image/png>` (`total`: the Content-Length, when known)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    textual = not media or media.startswith(_TEXT_TYPES) or media.endswith(("+json", "+xml"))
    prefix = body[:MAX_RESPONSE_BODY]
    if textual and b"\x00" not in prefix:
        return prefix.decode("utf-8", "replace")
    size = total if total is not None else len(body)
    return f"<binary: {size:,} bytes, {media or 'no content type'}>"


def content_length(value: str | None) -> int | None:
    return int(value) if value and value.isascii() and value.isdigit() else None


def parse_retry_after(value: str | None, now: float | None = None) -> int | None:
    """`Retry-After: 120` or an HTTP date -> milliseconds to wait; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²".isdigit() is True, and int("²") raises
        return int(value) * 1000
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    delta = when.timestamp() - (time.time() if now is None else now)
    return max(0, int(delta * 1000))
