"""Parsers for configuration text: durations, sizes, SMTP URLs, and the bounded parsers the settings
declare (`queue_system.config.declare.setting`). Each raises ValueError with a readable message,
which the settings prefix with the variable's name."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Generic, Literal, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

# ASCII digits: `\d` also matches Arabic-Indic and fullwidth digits (float() reads them too).
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*")  # fullmatch, as every pattern here
_INTEGER = re.compile(r"\s*[+-]?[0-9]{1,30}\s*")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, None: 1000}
_MAX_DURATION_MS = 1_000_000 * 86_400_000  # a million days: inside int64 and a float's exact range
_SIZE = re.compile(r"\s*([0-9]+)\s*(b|kb|kib|mb|mib)?\s*", re.IGNORECASE)
_UNIT_BYTES = {"b": 1, "kb": 1000, "kib": 1024, "mb": 1_000_000, "mib": 1_048_576, None: 1}
T = TypeVar("T")
Kind = Literal["integer", "duration", "size", "choice", "flag", "text", "other"]
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse_duration_ms(text: str) -> int:
    """`10s` -> 10000. Raises ValueError with a readable message."""
    match = _DURATION.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (use e.g. 500ms, 10s, 5m, 24h, 7d)")
    number, unit = match.groups()
    if len(number) > 40:  # far past the maximum (and int() refuses 4,300 digits with another message)
        raise ValueError(f"{text[:64]!r} is too long (at most {_MAX_DURATION_MS // 86_400_000:,}d)")
    # Exact: a float made "1.0001s" 1000 ms and "1.1s" 1100.0000000000002.
    ms = Fraction(number) * _UNIT_MS[unit]
    if ms > _MAX_DURATION_MS:
        raise ValueError(f"{text!r} is too long (at most {_MAX_DURATION_MS // 86_400_000:,}d)")
    if ms.denominator != 1:  # silently cut, "1.0001s" passed a check for whole seconds
        raise ValueError(f"{text!r} is not a whole number of milliseconds")
    return int(ms)


def parse_size_bytes(text: str) -> int:
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not a size (use e.g. 1048576, 512KiB, 1MiB)")
    number, unit = match.groups()
    return int(number) * _UNIT_BYTES[unit.lower() if unit else None]


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where the `email` kind sends: SMTP_URL parsed."""

    host: str
    port: int
    ssl: bool = False  # smtps://: TLS from the first byte
    starttls: bool = False  # smtp://...?starttls=true: upgrade the plain connection
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_smtp_url(url: str) -> SmtpServer:
    """`smtp://user:pass@host:587?starttls=true` -> SmtpServer. Raises ValueError with a readable message."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        # Not echoing the URL: it may carry a password, and this message is printed at start-up.
        raise ValueError("must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("no host (use e.g. smtp://localhost:1025)")
    port = parts.port  # raises ValueError for a port that is not a number or out of range
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"starttls"})
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r} (only starttls=true|false)")
    flag = (query.get("starttls") or ["false"])[-1].lower()
    if flag not in _TRUE + _FALSE:
        raise ValueError(f"starttls={flag!r} is not true or false")
    ssl = parts.scheme == "smtps"
    starttls = flag in _TRUE
    if ssl and starttls:
        raise ValueError("smtps:// is TLS already; starttls=true goes with smtp://")
    return SmtpServer(
        host=parts.hostname,
        port=port or (465 if ssl else 25),
        ssl=ssl,
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


# ---------------------------------------------------------------- parsers (each knows its bounds)


@dataclass(frozen=True, slots=True)
class Parser(Generic[T]):
    """Text of the environment -> a T; raises ValueError with a message that may follow `NAME: `.
    Generic, so mypy holds a setting's parser to the type of the field it declares."""

    parse: Callable[[str], T]
    allowed: str  # the bounds, as the settings page shows them
    # The same bounds as data, for tests (tests/test_settings_declaration.py generates values from them).
    kind: Kind = "other"
    bounds: tuple[int, int | None] | None = None  # inclusive; a duration's in ms (None: no maximum)
    unit_ms: int = 1  # a duration's value is in whole units of this (1000: seconds)
    options: tuple[str, ...] = ()  # a choice's


def integer(low: int, high: int) -> Parser[int]:
    def parse(text: str) -> int:
        if not _INTEGER.fullmatch(text):  # int() also reads other scripts' digits and "1_000"
            raise ValueError(f"{text[:64]!r} is not a whole number")
        number = int(text)
        if not low <= number <= high:
            raise ValueError(f"{number} is outside {low}..{high}")
        return number

    return Parser(parse, f"{low}-{high}", "integer", (low, high))


def _ms_text(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def duration(low_ms: int = 1, *, unit_ms: int = 1, high_ms: int | None = None) -> Parser[int]:
    """A duration of at least `low_ms` (and at most `high_ms`), in milliseconds (or whole
    `unit_ms`, e.g. 1000 for seconds)."""

    def parse(text: str) -> int:
        ms = parse_duration_ms(text)
        if ms < low_ms:
            raise ValueError(f"{text!r} is shorter than the minimum {low_ms}ms")
        if high_ms is not None and ms > high_ms:
            raise ValueError(f"{text!r} is longer than the maximum {_ms_text(high_ms)}")
        return ms // unit_ms

    if high_ms is None:
        allowed = f"a duration >= {_ms_text(low_ms)}"
    else:
        allowed = f"a duration, {_ms_text(low_ms)}-{_ms_text(high_ms)}"
    return Parser(parse, allowed, "duration", (low_ms, high_ms), unit_ms)


def size() -> Parser[int]:
    return Parser(parse_size_bytes, "a size: `1048576`, `512KiB`, `1MiB`", "size")


def choice(*options: str, upper: bool = False) -> Parser[str]:
    def parse(text: str) -> str:
        value = text.upper() if upper else text
        if value not in options:
            raise ValueError(f"{value!r} is not one of {', '.join(options)}")
        return value

    return Parser(parse, ", ".join(f"`{o}`" for o in options), "choice", options=options)


def text(allowed: str = "any") -> Parser[str]:
    return Parser(str, allowed, "text")


def boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{value!r} is not true or false")


def flag() -> Parser[bool]:
    return Parser(boolean, "`true`, `false`", "flag")


def redis_url(url: str) -> str:
    # Not echoing the URL: it may carry a password, and this message is printed at start-up.
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must start with redis://, rediss:// or unix://")
    if url.startswith("unix://"):
        return url
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or out of range
    except ValueError:
        raise ValueError("the port is not a number 0-65535") from None
    db = parts.path.strip("/")
    if db and not (db.isascii() and db.isdigit()):
        raise ValueError("the database (the path) is not a number")
    return url


def smtp_url(url: str) -> str:
    parse_smtp_url(url)  # validated at start-up; the kind parses it again through EmailSettings.smtp
    return url


def email_address(value: str) -> str:
    value = value.strip()
    if "@" not in value or "\r" in value or "\n" in value:
        raise ValueError(f"{value!r} is not an email address")
    return value


def email_addresses(value: str) -> tuple[str, ...]:
    return tuple(email_address(a) for a in value.split(",") if a.strip())


def module_names(value: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in value.split(",") if m.strip())
