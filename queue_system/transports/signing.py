"""Standard Webhooks (standardwebhooks.com): the `webhook-id`, `webhook-timestamp` and
`webhook-signature` headers of a delivery.

    webhook-signature = "v1,<base64 HMAC-SHA256(key, f'{id}.{timestamp}.'.encode() + body)>" per secret

signed over the exact bytes sent. Several secrets (space-separated, for rotation) each give their own
`v1,` entry, so a receiver holding either the old or the new secret verifies. We sign here rather
than with the `standardwebhooks` package: its `sign()` signs a str, and an aware non-UTC datetime
signs the wrong instant; the package verifies our output in the tests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import os
from collections.abc import Mapping, Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
# The spec asks for 24-64 byte keys; shorter ones are refused, longer ones are harmless for HMAC.
MIN_KEY_BYTES = 24


def webhook_id(task_id: str) -> str:
    """The `webhook-id` of every attempt of one task: receivers de-duplicate on it."""
    return f"msg_{task_id}"


def parse_secret(text: str, field: str = "signing_secret") -> bytes:
    """`whsec_<base64>` -> the HMAC key; a ValueError naming `field` otherwise (never echoing it)."""
    if not text.startswith(SECRET_PREFIX):
        raise ValueError(f"{field}: a signing secret starts with {SECRET_PREFIX!r}")
    encoded = text[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{field}: a signing secret is {SECRET_PREFIX} followed by base64") from None
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"{field}: a signing secret needs at least {MIN_KEY_BYTES} bytes of key")
    return key


def parse_secrets(text: str, field: str = "WEBHOOK_SIGNING_SECRET") -> tuple[bytes, ...]:
    """Space-separated secrets (rotation: old and new side by side) -> keys; empty text -> ()."""
    return tuple(parse_secret(item, field) for item in text.split())


def new_secret() -> str:
    """A fresh secret to hand out: `whsec_` + 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode("ascii")


def sign(msg_id: str, timestamp: int, body: bytes, keys: Sequence[bytes]) -> str:
    """The `webhook-signature` value: one `v1,<sig>` per key, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")
        for key in keys
    )


def webhook_headers(msg_id: str, body: bytes, keys: Sequence[bytes], now: float) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt sent at `now` (Unix seconds, from the caller's
    clock). Without keys there is no signature, but id and timestamp are still sent."""
    timestamp = math.floor(now)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if keys:
        headers["webhook-signature"] = sign(msg_id, timestamp, body, keys)
    return headers


# Standard Webhooks' receivers refuse a timestamp further than this from their clock (replays).
TOLERANCE_S = 5 * 60


def verify(headers: Mapping[str, str], body: bytes, keys: Sequence[bytes], now: float) -> bool:
    """Whether a delivery's `webhook-signature` (lower-case `headers`) holds a `v1,` entry signed
    by one of `keys` over its id, timestamp and `body`, with the timestamp within TOLERANCE_S."""
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit() or abs(now - int(stamp)) > TOLERANCE_S:
        return False
    expected = {sign(msg_id, int(stamp), body, [key]).encode() for key in keys}
    given = [entry.encode() for entry in headers.get("webhook-signature", "").split()]
    return any(hmac.compare_digest(entry, want) for entry in given for want in expected)
