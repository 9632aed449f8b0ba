"""API keys: which presented key may do what. Pure (no Litestar, no I/O but reading API_KEYS_FILE),
so the API and the worker's metrics port (which may not import the API) share it.

Keys come from `API_KEYS` (write), `API_READ_KEYS` (GET only) and `API_KEYS_FILE` (write keys, one per
line, `#` comments). An entry `sha256:<64 hex>` is the digest of a key, so the plain key need not be
stored. Every entry is kept as a SHA-256 digest and a presented key is compared with
`hmac.compare_digest` against every entry, without stopping at a match, so the time taken does not
depend on which key (if any) matched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

HASH_PREFIX = "sha256:"
MIN_KEY_LENGTH = 16  # a plain key shorter than this is refused at start: too easy to guess
MAX_PRESENTED_LENGTH = 1024  # longer presented keys are refused without hashing them
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")  # fullmatch


class Role(StrEnum):
    READ = "read"  # GET only
    WRITE = "write"  # everything


def hash_key(key: str) -> str:
    """The `sha256:<hex>` entry for a key (what an operator puts in API_KEYS instead of the key)."""
    return HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def _digest(entry: str, variable: str) -> bytes:
    if entry.startswith(HASH_PREFIX):
        hexdigest = entry[len(HASH_PREFIX) :]
        if not _HEX64.fullmatch(hexdigest):
            raise ValueError(f"{variable}: a {HASH_PREFIX} entry needs 64 hex digits")
        return bytes.fromhex(hexdigest)
    if len(entry) < MIN_KEY_LENGTH:
        # The key itself is never echoed: error messages end up in logs.
        raise ValueError(f"{variable}: keys need at least {MIN_KEY_LENGTH} characters")
    return hashlib.sha256(entry.encode()).digest()


def _entries(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def read_keys_file(path: Path) -> list[str]:
    """API_KEYS_FILE: one entry per line; blank lines and `#` comments are skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


@dataclass(frozen=True)
class KeyRing:
    """The configured keys as (digest, role) pairs. Empty means authentication is not configured."""

    entries: tuple[tuple[bytes, Role], ...] = ()

    @classmethod
    def from_settings(cls, api_keys: str = "", read_keys: str = "", keys_file: Path | None = None) -> KeyRing:
        """A ValueError names the variable at fault; a key both write and read is refused."""
        write = [_digest(e, "API_KEYS") for e in _entries(api_keys)]
        if keys_file is not None:
            write += [_digest(e, "API_KEYS_FILE") for e in read_keys_file(keys_file)]
        read = [_digest(e, "API_READ_KEYS") for e in _entries(read_keys)]
        if set(write) & set(read):
            raise ValueError("API_READ_KEYS: a key is in both the write and the read list")
        return cls(tuple((d, Role.WRITE) for d in write) + tuple((d, Role.READ) for d in read))

    @property
    def enabled(self) -> bool:
        return bool(self.entries)

    def authorize(self, presented: str | None) -> Role | None:
        """The role of `presented`, or None for a missing or unknown key."""
        if not presented or len(presented) > MAX_PRESENTED_LENGTH:
            return None
        digest = hashlib.sha256(presented.encode()).digest()
        role: Role | None = None
        for known, entry_role in self.entries:
            # No early exit: every entry is compared, whatever matched before.
            if hmac.compare_digest(digest, known):
                role = entry_role
        return role


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a request presents: `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    if authorization:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    return None


def startup_problem(ring: KeyRing, *, production: bool, auth_disabled: bool) -> str | None:
    """Why the API must refuse to start: production without keys, unless API_AUTH=disabled says so."""
    if production and not ring.enabled and not auth_disabled:
        return "ENV=production needs API_KEYS or API_KEYS_FILE (or API_AUTH=disabled to run open)"
    return None


def startup_warning(ring: KeyRing, *, auth_disabled: bool) -> str | None:
    """What to warn about at start when the API runs open."""
    if auth_disabled:
        return "API_AUTH=disabled: the API accepts requests without a key"
    if not ring.enabled:
        return "no API_KEYS: the API accepts requests without a key (development only)"
    return None
