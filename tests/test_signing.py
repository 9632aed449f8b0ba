"""Standard Webhooks signatures, verified by the independent `standardwebhooks` package."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from queue_system.transports.signing import (
    new_secret,
    parse_secret,
    parse_secrets,
    sign,
    webhook_headers,
    webhook_id,
)

OLD = "whsec_" + base64.b64encode(b"o" * 32).decode()
NEW = new_secret()
BODY = b'{"event": "order.paid", "amount": 12.5, "note": "caf\xc3\xa9 \\u00e9"}\n'


def test_signature_verifies_with_the_independent_package() -> None:
    headers = webhook_headers(webhook_id("0192a"), BODY, parse_secrets(NEW), time.time())
    assert headers["webhook-id"] == "msg_0192a"
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(NEW).verify(BODY, headers) == {"event": "order.paid", "amount": 12.5, "note": "café é"}


def test_rotation_each_secret_gets_its_own_entry_and_either_verifies() -> None:
    headers = webhook_headers("msg_t1", BODY, parse_secrets(f"{OLD}  {NEW}"), time.time())
    entries = headers["webhook-signature"].split(" ")
    assert len(entries) == 2 and all(e.startswith("v1,") for e in entries)
    Webhook(OLD).verify(BODY, headers)
    Webhook(NEW).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


@pytest.mark.parametrize(
    "tampered",
    [BODY + b" ", BODY.replace(b"12.5", b"12.6"), BODY.rstrip(b"\n"), BODY.replace(b": ", b":")],
)
def test_exact_bytes_any_change_fails(tampered: bytes) -> None:
    headers = webhook_headers("msg_t1", BODY, parse_secrets(NEW), time.time())
    with pytest.raises(WebhookVerificationError):
        Webhook(NEW).verify(tampered, headers)


def test_id_and_timestamp_are_signed() -> None:
    now = time.time()
    headers = webhook_headers("msg_t1", BODY, parse_secrets(NEW), now)
    for name, value in (("webhook-id", "msg_t2"), ("webhook-timestamp", str(int(now) - 1))):
        with pytest.raises(WebhookVerificationError):
            Webhook(NEW).verify(BODY, {**headers, name: value})


def test_known_vector() -> None:
    """The formula itself, independent of both implementations: HMAC-SHA256 over id.timestamp.body."""
    key = b"k" * 24
    expected = base64.b64encode(hmac.new(key, b"msg_x.1700000000.hello", hashlib.sha256).digest()).decode()
    assert sign("msg_x", 1700000000, b"hello", [key]) == f"v1,{expected}"
    headers = webhook_headers("msg_x", b"hello", [key], 1700000000.9)
    assert headers["webhook-timestamp"] == "1700000000"  # whole seconds, floored


def test_without_secrets_id_and_timestamp_still_go() -> None:
    assert set(webhook_headers("msg_t1", BODY, (), time.time())) == {"webhook-id", "webhook-timestamp"}
    assert parse_secrets("") == ()


def test_stable_id_across_attempts() -> None:
    assert webhook_id("abc") == webhook_id("abc") == "msg_abc"


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("sk_live_abc", "starts with 'whsec_'"),
        ("whsec_not*base64!", "base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "at least 24 bytes"),
    ],
)
def test_bad_secrets_name_the_field_and_never_echo(secret: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_secret(secret, "signing_secret")
    assert str(info.value).startswith("signing_secret:")
    assert secret not in str(info.value)


def test_unpadded_secret_is_accepted_like_the_package_does() -> None:
    unpadded = NEW.rstrip("=")
    headers = webhook_headers("msg_t1", BODY, parse_secrets(unpadded), time.time())
    Webhook(NEW).verify(BODY, headers)
