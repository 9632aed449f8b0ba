"""Secrets out of what we show, hostile input out of what we accept. Pure functions, no I/O.

Redaction: webhook header values that carry credentials (`Authorization`, `Cookie`,
`Proxy-Authorization`, `*-Key`, `*-Token`, `*-Secret`, ...) become `[redacted]`, and the write-only
`signing_secret` is dropped, in GET responses, lists and logs alike.

Validation returns `(field, message)` problems (never raises), so the API turns them into one 422
naming each field: refused header names (the sender sets framing and hop-by-hop headers itself), caps
on header count and size, and a cap on JSON nesting that runs on the raw bytes *before* decoding
(msgspec raises RecursionError on very deep input, which would otherwise be a 500).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from queue_system.domain.sendable import header_value_problem, is_header_name

REDACTED = "[redacted]"
MAX_HEADERS = 64
MAX_HEADER_BYTES = 16 * 1024  # names + values, as sent
MAX_JSON_DEPTH = 32

Problem = tuple[str, str]  # (field, message)

_SECRET_NAMES = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
# `X-API-Key`, `X-Auth-Token`, `Client-Secret`, `apikey`, `X_Session_Token`, `X-Hub-Signature`...
_SECRET_SUFFIX = re.compile(r"(?:^|[-_])(?:api[-_]?key|key|token|secret|password|passwd|signature|session)$")
_SECRET_WORDS = ("secret", "token", "password", "apikey", "api-key", "api_key", "credential")

# Set by the sender from the request it builds; a caller's value would smuggle or break framing.
_REFUSED = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "te", "upgrade", "keep-alive", "trailer"}
)
# Ours: Standard Webhooks headers are computed per attempt and signed.
_OURS = frozenset({"webhook-id", "webhook-timestamp", "webhook-signature"})


@functools.lru_cache(maxsize=4096)  # a queue's webhooks repeat a handful of header names
def is_secret_header(name: str) -> bool:
    lowered = name.strip().lower()
    return (
        lowered in _SECRET_NAMES
        or bool(_SECRET_SUFFIX.search(lowered))
        or any(word in lowered for word in _SECRET_WORDS)
    )


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy with credential-carrying values replaced by `[redacted]` (names kept: they help)."""
    return {name: REDACTED if is_secret_header(name) else value for name, value in headers.items()}


def redact_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A webhook payload as it may be shown or logged: `signing_secret` dropped, `headers` redacted."""
    shown = {key: value for key, value in payload.items() if key != "signing_secret"}
    headers = shown.get("headers")
    if isinstance(headers, Mapping):
        shown["headers"] = redact_headers(headers)
    return shown


def header_problems(
    headers: Mapping[str, str],
    field: str = "headers",
    *,
    max_count: int = MAX_HEADERS,
    max_bytes: int = MAX_HEADER_BYTES,
) -> list[Problem]:
    """Why these caller-supplied headers cannot be sent; empty when they can."""
    problems: list[Problem] = []
    if len(headers) > max_count:
        problems.append((field, f"at most {max_count} headers"))
    size = sum(len(name.encode()) + len(value.encode()) for name, value in headers.items())
    if size > max_bytes:
        problems.append((field, f"at most {max_bytes} bytes of header names and values"))
    seen: set[str] = set()
    for name, value in headers.items():
        problem = _name_problem(name, seen)
        if problem is None:
            problem = header_value_problem(value)  # what both senders send as given
        if problem:
            problems.append((f"{field}.{name}", problem))
    return problems


def _name_problem(name: str, seen: set[str]) -> str | None:
    lowered = name.lower()
    if not is_header_name(name):
        return "not a valid header name"
    if lowered in _REFUSED or lowered.startswith("proxy-"):
        return "set by the sender; it cannot be given"
    if lowered in _OURS:
        return "set by the sender (Standard Webhooks); it cannot be given"
    if lowered in seen:
        return "given twice (header names are case-insensitive)"
    seen.add(lowered)
    return None


# Everything but the four brackets is deleted before counting; strings are removed first.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENERS = frozenset(b"[{")


def raw_json_depth_problem(
    raw: bytes, field: str = "payload", max_depth: int = MAX_JSON_DEPTH
) -> Problem | None:
    """Run on a request body before decoding it: a problem when its nesting exceeds `max_depth`.
    Malformed JSON is left to the decoder to report."""
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return None  # cannot nest deeper than it has openers: the common case, at C speed
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        depth = depth + 1 if byte in _OPENERS else depth - 1
        if depth > max_depth:
            return (field, f"JSON nested deeper than {max_depth} levels")
    return None


def json_depth_problem(value: Any, field: str = "payload", max_depth: int = MAX_JSON_DEPTH) -> Problem | None:
    """The same rule for an already decoded value (e.g. one built in Python); iterative, so a deep
    value cannot exhaust the stack here either."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > max_depth:
            return (field, f"JSON nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children)
    return None
