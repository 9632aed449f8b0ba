"""The API's view of its keys: the key ring itself lives in `domain/keyring.py`, shared with the
worker's metrics port (worker/ may not import api/)."""

from __future__ import annotations

from queue_system.domain.keyring import (
    HASH_PREFIX,
    MAX_PRESENTED_LENGTH,
    MIN_KEY_LENGTH,
    KeyRing,
    Role,
    hash_key,
    presented_key,
    read_keys_file,
    startup_problem,
    startup_warning,
)

__all__ = [
    "HASH_PREFIX",
    "MAX_PRESENTED_LENGTH",
    "MIN_KEY_LENGTH",
    "KeyRing",
    "Role",
    "hash_key",
    "presented_key",
    "read_keys_file",
    "startup_problem",
    "startup_warning",
]
