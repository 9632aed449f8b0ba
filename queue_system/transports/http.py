"""HTTP transport: send one webhook request with a shared `httpx.Client` and classify the outcome.

2xx -> success. Timeouts, connection errors, 408/425/429/5xx -> transient (honouring `Retry-After`);
a failure to reach the host (DNS, refused, connect timeout, TLS) is marked `connect_failed`: it counts
against the host's breaker, not the endpoint's (domain/destinations.py).
Any other status, a connection the egress guard refuses (`EgressBlocked`, see egress_httpx.py) and
too many redirects -> permanent. A request that cannot be sent as given (domain/sendable.py, or the
client refusing to write it) -> permanent without counting against the destination (`unsendable`).
Redirects follow the client's setting (WEBHOOK_FOLLOW_REDIRECTS).
Only a bounded prefix of a response is read; a binary one is kept as a marker (`response_text`).
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field

import httpx

from queue_system.domain.models import MAX_RESPONSE_BODY, AttemptResult, Outcome
from queue_system.domain.sendable import request_problem, unsendable
from queue_system.transports.egress import EgressBlocked

TRANSIENT_STATUS = frozenset({408, 425, 429})
# Read at most this much of a response; a larger body closes the connection instead of draining it.
_READ_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    url: str
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None


def send(client: httpx.Client, request: WebhookRequest, timeout_s: float) -> AttemptResult:
    problem = request_problem(request.url, request.headers)
    if problem is not None:  # e.g. a task stored before the submit checked this
        return unsendable(problem)
    return exchange(client, request, timeout_s)


def exchange(client: httpx.Client, request: WebhookRequest, timeout_s: float) -> AttemptResult:
    """`send` without our sendability check: the request as the client itself takes it or refuses it."""
    try:
        with client.stream(
            request.method,
            request.url,
            headers=request.headers,
            content=request.content,
            timeout=timeout_s,
        ) as response:
            body = _read_prefix(response)
    except EgressBlocked as exc:
        return AttemptResult(Outcome.PERMANENT, error=str(exc))
    except httpx.TooManyRedirects as exc:
        return AttemptResult(Outcome.PERMANENT, error=f"TooManyRedirects: {exc}")
    except (httpx.LocalProtocolError, httpx.InvalidURL, UnicodeEncodeError) as exc:
        # The client refused to write this request (h11 on a header, a URL, a non-ASCII value):
        # our side's doing, never the destination's.
        return unsendable(f"{type(exc).__name__}: {exc}")
    except httpx.ConnectTimeout as exc:  # the host is unreachable: a host-level fact (connect_failed)
        return AttemptResult(
            Outcome.TRANSIENT,
            error=f"connect timeout after {timeout_s:g}s ({type(exc).__name__})",
            connect_failed=True,
        )
    except httpx.TimeoutException as exc:
        return AttemptResult(Outcome.TRANSIENT, error=f"timeout after {timeout_s:g}s ({type(exc).__name__})")
    except httpx.ConnectError as exc:  # DNS, refused, TLS: httpcore raises it before the request goes out
        return AttemptResult(
            Outcome.TRANSIENT, error=f"ConnectError: {exc}".rstrip(": "), connect_failed=True
        )
    except httpx.TransportError as exc:
        return AttemptResult(Outcome.TRANSIENT, error=f"{type(exc).__name__}: {exc}".rstrip(": "))
    return classify(response, body)


def _read_prefix(response: httpx.Response) -> bytes:
    buf = bytearray()
    for chunk in response.iter_bytes():
        buf += chunk
        if len(buf) >= _READ_LIMIT:
            break
    return bytes(buf[:MAX_RESPONSE_BODY])


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


def classify(response: httpx.Response, body: bytes) -> AttemptResult:
    code = response.status_code
    headers = response.headers
    text = response_text(body, headers.get("content-type"), content_length(headers.get("content-length")))
    if 200 <= code < 300:
        return AttemptResult(
            Outcome.SUCCESS, result={"status_code": code}, status_code=code, response_body=text
        )
    error = f"HTTP {code}"
    if code in TRANSIENT_STATUS or code >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return AttemptResult(
            Outcome.TRANSIENT, error=error, status_code=code, response_body=text, retry_after_ms=retry_after
        )
    return AttemptResult(Outcome.PERMANENT, error=error, status_code=code, response_body=text)


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
