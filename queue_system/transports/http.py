"""HTTP transport: send one webhook request with a shared `httpx.Client` (the sync sender).

How the outcome is classified and worded is transports/outcome.py's, shared with the async sender:
this module only names the stage at which httpx failed (`_STAGES`). A connection the egress guard
refuses (`EgressBlocked`, see egress_httpx.py) is permanent; a request that cannot be sent as given
(domain/sendable.py, or the client refusing to write it) is permanent without counting against the
destination (`unsendable`). Redirects follow the client's setting (WEBHOOK_FOLLOW_REDIRECTS).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from queue_system.domain.models import MAX_RESPONSE_BODY, AttemptResult
from queue_system.domain.sendable import request_problem, unsendable
from queue_system.transports.egress import EgressBlocked
from queue_system.transports.outcome import (
    READ_LIMIT,
    Failure,
    answered_with,
    failed,
    parse_retry_after,
    response_text,
)

__all__ = ["WebhookRequest", "classify", "exchange", "parse_retry_after", "response_text", "send"]

# httpx's exceptions -> the stage they mean, most specific first.
_STAGES: tuple[tuple[type[Exception], Failure], ...] = (
    (httpx.TooManyRedirects, Failure.REDIRECTS),
    (httpx.ConnectTimeout, Failure.CONNECT_TIMEOUT),
    (httpx.TimeoutException, Failure.RESPONSE_TIMEOUT),
    (httpx.ConnectError, Failure.CONNECT),
    (httpx.RemoteProtocolError, Failure.CLOSED),  # "Server disconnected without sending a response."
    (httpx.ReadError, Failure.CLOSED),
)


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
    except (httpx.LocalProtocolError, httpx.InvalidURL, UnicodeEncodeError) as exc:
        # The client refused to write this request (h11 on a header, a URL, a non-ASCII value):
        # our side's doing, never the destination's.
        return unsendable(f"{type(exc).__name__}: {exc}")
    except (httpx.TransportError, httpx.TooManyRedirects, EgressBlocked) as exc:
        stage = next((s for t, s in _STAGES if isinstance(exc, t)), Failure.NETWORK)
        return failed(stage, exc, request.url, timeout_s)
    return classify(response, body)


def _read_prefix(response: httpx.Response) -> bytes:
    buf = bytearray()
    for chunk in response.iter_bytes():
        buf += chunk
        if len(buf) >= READ_LIMIT:
            break
    return bytes(buf[:MAX_RESPONSE_BODY])


def classify(response: httpx.Response, body: bytes) -> AttemptResult:
    return answered_with(response.status_code, response.headers, body)
