"""Paths of fields in msgspec validation errors: split them out of the message, join them to a prefix."""

from __future__ import annotations

import re

_FIELD_IN_MESSAGE = re.compile(r"^Object (?:missing required|contains unknown) field `([^`]+)`")


def split_msgspec_error(text: str) -> tuple[str, str]:
    """`Expected str, got int - at $.a.b` -> ("a.b", "Expected str, got int");
    `Object missing required field url` -> ("url", ...). The path is "" for the root."""
    message, _, where = text.partition(" - at `$")
    path = where.rstrip("`").lstrip(".")
    named = _FIELD_IN_MESSAGE.match(message)
    if named:
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    return path, message


def join_field(prefix: str, path: str) -> str:
    if not path:
        return prefix or "body"
    if not prefix:
        return path
    return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}"
