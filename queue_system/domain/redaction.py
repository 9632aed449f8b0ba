"""Secrets out of what we show, hostile input out of what we accept. Pure functions, no I/O.

Redaction, one rule for every reader (GET, lists, the old-system aliases, the dashboard, the CLI,
which shows what the API answers, and log lines):

- a header whose name contains `auth`, `token`, `secret`, `signature`, `key`, `cookie`, `session`,
  `password`, `passwd` or `credential` (any case, anywhere in the name) is shown as `[redacted]`;
- so is any header whose value looks like a credential, whatever its name: `Bearer ...`,
  `Basic ...`, `Token ...`, `Digest ...` (any case), a JWT (`eyJ...` `.` ...) or a `whsec_` secret;
- in a URL, the password of its userinfo (all of a userinfo without one), and the value of every
  query (or fragment) parameter whose name contains one of the words above or `sig`, `pass`,
  `pwd`, or whose value looks like a credential (`?token=[redacted]&page=2`);
- URLs inside free text (errors, an attempt's response) are redacted the same way, and
  credential-looking words in it;
- the write-only `signing_secret` is dropped;
- every value the rules above hide in a task's payload (of at least `MIN_ECHOED_SECRET`
  characters) is also masked wherever it appears in that task's errors and responses: receivers
  (request bins, error pages: "invalid token ...") echo what they were sent.

The stored payload keeps everything: the worker sends it as given.

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
from urllib.parse import unquote_plus

import msgspec

from queue_system.domain.models import Attempt, Task
from queue_system.domain.sendable import header_value_problem, is_header_name

REDACTED = "[redacted]"
MAX_HEADERS = 64
MAX_HEADER_BYTES = 16 * 1024  # names + values, as sent
MAX_JSON_DEPTH = 32
# Shorter secret values are hidden in the payload but not searched for in free text: masking
# every "ab" of a response would hide more than it protects.
MIN_ECHOED_SECRET = 4

Problem = tuple[str, str]  # (field, message)

# The documented rule (module docstring): a name containing any of these words is a secret's.
SECRET_WORDS = (
    "auth",
    "token",
    "secret",
    "signature",
    "key",
    "cookie",
    "session",
    "password",
    "passwd",
    "credential",
)
# Query parameters are terser (`sig=` in Azure SAS URLs, `pwd=`, `pass=`).
_SECRET_PARAM_WORDS = (*SECRET_WORDS, "sig", "pass", "pwd")
_CREDENTIAL_VALUE = re.compile(
    r"^\s*(?:bearer|basic|token|digest)\s+\S"  # an Authorization-style scheme and its credentials
    r"|eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"  # a JWT: base64url of '{"' then a dot
    r"|whsec_",  # a Standard Webhooks secret
    re.IGNORECASE,
)
# In free text: a URL (up to whitespace or a quote), or a scheme and its credentials.
_URL_IN_TEXT = re.compile(r"""[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>]+""")
_CREDENTIAL_IN_TEXT = re.compile(
    r"\b(bearer|basic|token|digest)(\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_.-]*|whsec_[A-Za-z0-9+/=]*",
    re.IGNORECASE,
)

# Set by the sender from the request it builds; a caller's value would smuggle or break framing.
_REFUSED = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "te", "upgrade", "keep-alive", "trailer"}
)
# Ours: Standard Webhooks headers are computed per attempt and signed.
_OURS = frozenset({"webhook-id", "webhook-timestamp", "webhook-signature"})


@functools.lru_cache(maxsize=4096)  # a queue's webhooks repeat a handful of header names
def is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def looks_like_credential(value: str) -> bool:
    """`Bearer ...`, `Basic ...`, `Token ...`, `Digest ...`, a JWT, a `whsec_` secret."""
    return bool(_CREDENTIAL_VALUE.search(value))


def redact_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with credential-carrying values replaced by `[redacted]` (names kept: they help)."""
    return {
        name: REDACTED
        if is_secret_header(name) or (isinstance(value, str) and looks_like_credential(value))
        else value
        for name, value in headers.items()
    }


def _secret_param(name: str, value: str) -> bool:
    lowered = unquote_plus(name).lower()
    return any(word in lowered for word in _SECRET_PARAM_WORDS) or looks_like_credential(unquote_plus(value))


def _redact_params(text: str) -> str:
    parts = []
    for part in text.split("&"):
        name, eq, value = part.partition("=")
        parts.append(f"{name}={REDACTED}" if eq and value and _secret_param(name, value) else part)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """The URL as it may be shown: userinfo's password and secret-looking parameters `[redacted]`;
    everything else as given (the sender still sends the original)."""
    if "?" not in url and "#" not in url and "@" not in url:
        return url  # the common case: nothing to look at
    head, hash_, fragment = url.partition("#")
    base, question, query = head.partition("?")
    scheme, sep, rest = base.partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        userinfo, at, host = authority.rpartition("@")
        if at and ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":" + REDACTED
        elif at:
            userinfo = REDACTED  # a user name alone is often a token (`https://<token>@host/`)
        base = f"{scheme}{sep}{userinfo}{at}{host}{slash}{path}"
    shown = base + question + (_redact_params(query) if question else "")
    return shown + hash_ + (_redact_params(fragment) if hash_ else "")


def redact_text(text: str) -> str:
    """Free text (an error message) as it may be shown: URLs in it redacted, credentials masked."""
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    return _CREDENTIAL_IN_TEXT.sub(
        lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}" if m.group(1) else REDACTED, text
    )


def _url_secrets(url: str) -> set[str]:
    """The parts of `url` that `redact_url` hides: userinfo, secret parameters' values."""
    found: set[str] = set()
    head, _, fragment = url.partition("#")
    base, _, query = head.partition("?")
    _, sep, rest = base.partition("://")
    userinfo, at, _ = rest.partition("/")[0].rpartition("@")
    if sep and at:
        found.update((userinfo, userinfo.partition(":")[2]))
    for part in f"{query}&{fragment}".split("&"):
        name, eq, value = part.partition("=")
        if eq and value and _secret_param(name, value):
            found.update((value, unquote_plus(value)))
    return found


def secret_values(payload: Any) -> tuple[str, ...]:
    """The values `redact_payload` hides in `payload`, longest first, to mask them where a receiver
    echoed them back (`MIN_ECHOED_SECRET` characters at least)."""
    if not isinstance(payload, Mapping):
        return ()
    found: set[str] = set()
    headers = payload.get("headers")
    if isinstance(headers, Mapping):
        for name, value in headers.items():
            if isinstance(value, str) and (is_secret_header(name) or looks_like_credential(value)):
                found.add(value.strip())
                found.update(value.split()[1:])  # `Bearer <token>`: the token is echoed alone too
    url = payload.get("url")
    if isinstance(url, str):
        found.update(_url_secrets(url))
    secret = payload.get("signing_secret")
    if isinstance(secret, str):
        found.update((secret, secret.removeprefix("whsec_")))
    return tuple(sorted((v for v in found if len(v) >= MIN_ECHOED_SECRET), key=len, reverse=True))


def shown_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Free text of a task (an error, a response) as it may be shown: the task's own `secrets`
    (`secret_values`) masked, then `redact_text`."""
    for value in secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    return redact_text(text)


def redact_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A payload as it may be shown or logged: `signing_secret` dropped, `headers` redacted, `url`
    redacted (any kind's payload: a rule that depends on the kind would miss the next one)."""
    shown = {key: value for key, value in payload.items() if key != "signing_secret"}
    headers = shown.get("headers")
    if isinstance(headers, Mapping):
        shown["headers"] = redact_headers(headers)
    url = shown.get("url")
    if isinstance(url, str):
        shown["url"] = redact_url(url)
    return shown


def shown_payload(payload: Any) -> Any:
    """What every reader shows of a stored payload (the rule in the module docstring)."""
    if not isinstance(payload, Mapping):
        return payload
    if "headers" not in payload and "signing_secret" not in payload and "url" not in payload:
        return payload  # the common case costs three lookups
    return redact_payload(payload)


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
# A JSON string, its plain characters matched in runs (the alternation per character it replaced
# took 0.6 ms on a 30 KB batch body, this 0.28 ms; same matches).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENERS = frozenset(b"[{")
_LEAF_PAIRS = re.compile(rb"\[\]|\{\}")


def raw_json_depth_problem(
    raw: bytes, field: str = "payload", max_depth: int = MAX_JSON_DEPTH
) -> Problem | None:
    """Run on a request body before decoding it: a problem when its nesting exceeds `max_depth`.
    Malformed JSON is left to the decoder to report."""
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return None  # cannot nest deeper than it has openers: the common case, at C speed
    # Without a backslash every `"` opens or closes a string: the text between quotes split out is
    # ~10x cheaper than the string pattern (2.8 us per batch item on a 1000-item body).
    outside = b"".join(raw.split(b'"')[::2]) if b"\\" not in raw else _STRING.sub(b"", raw)
    brackets = outside.translate(None, _NOT_BRACKETS)
    # Each pass deletes the innermost pairs, one level of nesting: a body no deeper than the limit
    # is gone within max_depth passes, at C speed (the loop below took ~1.5 us per batch item).
    # What is left (too deep, or unbalanced) is counted exactly.
    left = brackets
    for _ in range(max_depth):
        if not left:
            return None
        left = _LEAF_PAIRS.sub(b"", left)
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


def shown_task(task: Task) -> Task:
    """A task as every reader sees it: its payload and result by `shown_payload`, its errors and
    the responses of its attempts by `shown_text`. A copy; the stored task is untouched."""
    changes: dict[str, Any] = {}
    payload = shown_payload(task.payload)
    if payload is not task.payload:
        changes["payload"] = payload
    result = shown_payload(task.result)
    if result is not task.result:
        changes["result"] = result
    texts = task.last_error or any(a.error or a.response_body or a.detail for a in task.history)
    secrets = secret_values(task.payload) if texts and payload is not task.payload else ()
    if task.last_error:
        changes["last_error"] = shown_text(task.last_error, secrets)
    if any(a.error or a.response_body or a.detail for a in task.history):
        changes["history"] = [_shown_attempt(a, secrets) for a in task.history]
    return msgspec.structs.replace(task, **changes) if changes else task


def _shown_attempt(attempt: Attempt, secrets: tuple[str, ...]) -> Attempt:
    if not attempt.error and not attempt.response_body and not attempt.detail:
        return attempt
    return msgspec.structs.replace(
        attempt,
        error=shown_text(attempt.error, secrets) if attempt.error else attempt.error,
        response_body=shown_text(attempt.response_body, secrets)
        if attempt.response_body
        else attempt.response_body,
        detail=shown_text(attempt.detail, secrets) if attempt.detail else attempt.detail,
    )
