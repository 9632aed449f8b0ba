"""What an outbound HTTP request may carry, so that what the submit accepts both senders send as
given (aiohttp in the worker's loop, httpx in the sync handler). Pure functions, no I/O.

One definition, used at submit (kinds/webhook.py, domain/redaction.py's header checks) and again by
both senders just before a request goes out (transports/http.py, transports/async_http.py), so a
task stored before a rule existed fails permanently instead of being retried for a day (except
for the two rules that are policy, not sendability: credentials and a fragment in the URL):

- header name: an RFC 9110 token (`!#$%&'*+-.^_`|~`, digits, ASCII letters), nothing else;
- header value: printable ASCII, spaces and tabs inside but not at either end. Both clients refuse
  CR, LF, NUL and most controls (each a different set); httpx cannot encode non-ASCII at all and
  aiohttp sends it as UTF-8, so the intersection is what both send byte for byte;
- URL: `http`/`https` with a host, a port 1-65535 if given, no spaces or control characters, no
  backslash (parsers disagree on it), no `user:password@` (clients turn it into Basic auth,
  visible to anyone who may read the task: use an `Authorization` header, which is redacted) and
  no `#fragment` (never sent).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from queue_system.domain.models import AttemptResult, Outcome

# RFC 9110 5.1 field-name = token; fullmatch: a trailing "\n" is not a token character.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# RFC 9110 5.5 field-value without obs-text: visible ASCII, SP/HTAB only between visible ones.
_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?)?")
# ASCII controls, space, DEL and the backslash: never valid unencoded in a URL.
_URL_BAD = re.compile(r"[\x00-\x20\x7f\\]")

USERINFO_HINT = (
    "must not carry credentials (user:password@): they would be sent as Basic auth and shown to "
    "anyone who can read the task; send them in an `Authorization` header instead (it is redacted)"
)


@functools.lru_cache(maxsize=4096)  # checked on every send: a queue's webhooks repeat their names
def is_header_name(name: str) -> bool:
    return _TOKEN.fullmatch(name) is not None


def header_value_problem(value: str) -> str | None:
    """Why this header value cannot be sent as given, or None."""
    # The common case in C: printable ASCII (0x20-0x7e) without a space at either end.
    if value.isascii() and value.isprintable() and value[:1] != " " and value[-1:] != " ":
        return None
    if _VALUE.fullmatch(value) is not None:  # a tab inside
        return None
    if any(c in value for c in "\r\n\0"):
        return "the value contains a control character (CR, LF or NUL)"
    if not value.isascii():
        return "the value must be printable ASCII (percent-encode anything else)"
    if value.strip(" \t") != value:
        return "the value starts or ends with a space or tab"
    return "the value contains a control character"


@functools.lru_cache(maxsize=4096)  # a queue's webhooks go to a handful of URLs
def url_problem(url: str) -> str | None:
    """Why the submit refuses this webhook URL, or None: it cannot be sent as written, or it
    carries credentials or a fragment."""
    problem = _unsendable_url(url)
    if problem is not None:
        return problem
    if "@" in urlsplit(url).netloc:
        return USERINFO_HINT
    if "#" in url:
        return "must not have a #fragment: it is never sent"
    return None


@functools.lru_cache(maxsize=4096)
def _unsendable_url(url: str) -> str | None:
    """Why no request to this URL can go out as written (the senders' check: credentials and a
    fragment are the submit's policy; a task stored before that rule is still delivered)."""
    bad = _URL_BAD.search(url)
    if bad is not None:
        return f"contains {bad.group()!r} at position {bad.start()} (percent-encode it)"
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError: not a number, or above 65535
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http:// or https:// URL"
    if port == 0:
        return "port 0 cannot be connected to (use 1-65535)"
    return None


def request_problem(url: str, headers: Mapping[str, str]) -> str | None:
    """Why this request cannot be sent as given (the senders' last check), or None."""
    problem = _unsendable_url(url)
    if problem is not None:
        return f"url: {problem}"
    for name, value in headers.items():
        if not is_header_name(name):
            return f"header name {name!r} is not an RFC 9110 token"
        problem = header_value_problem(value)
        if problem is not None:
            return f"header {name}: {problem}"
    return None


def unsendable(problem: str) -> AttemptResult:
    """The attempt of a request that cannot be sent as given: permanent (no retry can help) and
    not the destination's fault (`about_destination=False`: its breaker does not count it)."""
    return AttemptResult(Outcome.PERMANENT, error=f"unsendable request: {problem}", about_destination=False)
