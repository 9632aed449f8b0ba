"""API key matching: plain and hashed keys, read-only keys, the keys file, bad settings."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from queue_system.api.keys import (
    KeyRing,
    Role,
    hash_key,
    presented_key,
    startup_problem,
    startup_warning,
)

WRITE = "write-key-0123456789"
HASHED = "hashed-key-0123456789"
READER = "read-key-0123456789ab"


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.from_settings(api_keys=f"{WRITE}, {hash_key(HASHED)}", read_keys=READER)


def test_roles(ring: KeyRing) -> None:
    assert ring.enabled
    assert ring.authorize(WRITE) is Role.WRITE
    assert ring.authorize(HASHED) is Role.WRITE  # matched through its sha256: entry
    assert ring.authorize(hash_key(HASHED)) is None  # the digest itself is not a key
    assert ring.authorize(READER) is Role.READ


@pytest.mark.parametrize("presented", [None, "", "wrong-key-0123456789", WRITE + " ", WRITE[:-1], "x" * 5000])
def test_missing_or_wrong_keys(ring: KeyRing, presented: str | None) -> None:
    assert ring.authorize(presented) is None


def test_uppercase_hex_digest_entry() -> None:
    entry = "sha256:" + hashlib.sha256(HASHED.encode()).hexdigest().upper()
    assert KeyRing.from_settings(api_keys=entry).authorize(HASHED) is Role.WRITE


def test_no_keys_means_disabled() -> None:
    ring = KeyRing.from_settings(api_keys=" , ")
    assert not ring.enabled
    assert ring.authorize(WRITE) is None


def test_keys_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# rotated 2026-11\n{WRITE}\n\n  {hash_key(HASHED)}  \n", encoding="utf-8")
    ring = KeyRing.from_settings(keys_file=path, read_keys=READER)
    assert ring.authorize(WRITE) is Role.WRITE
    assert ring.authorize(HASHED) is Role.WRITE
    assert ring.authorize("# rotated 2026-11") is None
    assert ring.authorize(READER) is Role.READ


@pytest.mark.parametrize(
    ("api_keys", "read_keys", "message"),
    [
        ("short", "", "API_KEYS: keys need at least 16"),
        ("", "sha256:abc", "API_READ_KEYS: a sha256: entry needs 64 hex"),
        (WRITE, WRITE, "in both"),
    ],
)
def test_bad_settings_name_the_variable_not_the_key(api_keys: str, read_keys: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        KeyRing.from_settings(api_keys=api_keys, read_keys=read_keys)
    assert "short" not in str(info.value).replace("shorter", "")
    assert WRITE not in str(info.value)


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "expected"),
    [
        (f"Bearer {WRITE}", None, WRITE),
        (f"bearer   {WRITE} ", None, WRITE),
        (None, WRITE, WRITE),
        ("Basic dXNlcjpwYXNz", WRITE, WRITE),  # not ours: fall back to X-API-Key
        ("Bearer ", None, None),
        (None, "  ", None),
        (None, None, None),
    ],
)
def test_presented_key(authorization: str | None, x_api_key: str | None, expected: str | None) -> None:
    assert presented_key(authorization, x_api_key) == expected


def test_every_entry_is_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    """Timing must not depend on which key matched: compare_digest runs once per entry, always."""
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    ring = KeyRing.from_settings(api_keys=f"{WRITE},{HASHED}", read_keys=READER)
    monkeypatch.setattr("queue_system.domain.keyring.hmac.compare_digest", counting)
    for presented in (WRITE, READER, "unknown-key-0123456789"):
        calls.clear()
        ring.authorize(presented)
        assert len(calls) == 3


def test_startup_rules() -> None:
    none, some = KeyRing(), KeyRing.from_settings(api_keys=WRITE)
    problem = startup_problem(none, production=True, auth_disabled=False)
    assert problem is not None and "API_KEYS" in problem
    assert startup_problem(none, production=True, auth_disabled=True) is None
    assert startup_problem(none, production=False, auth_disabled=False) is None
    assert startup_problem(some, production=True, auth_disabled=False) is None
    assert startup_warning(none, auth_disabled=False) is not None
    assert startup_warning(some, auth_disabled=True) is not None
    assert startup_warning(some, auth_disabled=False) is None
