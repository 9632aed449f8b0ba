"""HTTP transport: send one webhook request with a shared `httpx.Client` and classify the outcome.

2xx -> success. Timeouts, connection errors, 408/425/429/5xx -> transient (honouring `Retry-After`).
Any other status -> permanent.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field

import httpx

from queue_system.domain.models import MAX_RESPONSE_BODY, AttemptResult, Outcome

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
    try:
        with client.stream(
            request.method,
            request.url,
            headers=request.headers,
            content=request.content,
            timeout=timeout_s,
            follow_redirects=False,
        ) as response:
            body = _read_prefix(response)
    except httpx.TimeoutException as exc:
        return AttemptResult(Outcome.TRANSIENT, error=f"timeout after {timeout_s:g}s ({type(exc).__name__})")
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


def classify(response: httpx.Response, body: bytes) -> AttemptResult:
    code = response.status_code
    text = body.decode("utf-8", "replace")
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
    if value.isdigit():
        return int(value) * 1000
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    delta = when.timestamp() - (time.time() if now is None else now)
    return max(0, int(delta * 1000))
