"""Redaction of secrets and the rules for hostile webhook input (pure functions)."""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec
import pytest

from queue_system.domain.redaction import (
    MAX_JSON_DEPTH,
    REDACTED,
    header_problems,
    is_secret_header,
    json_depth_problem,
    raw_json_depth_problem,
    redact_headers,
    redact_payload,
)


@pytest.mark.parametrize(
    "name",
    [
        "Authorization", "authorization", "PROXY-AUTHORIZATION", "Cookie", "Set-Cookie", "X-API-Key",
        "x-api-key", "Api-Key", "apikey", "X-Auth-Token", "X_Session_Token", "Client-Secret",
        "X-Hub-Signature", "X-Webhook-Secret-Value", "Private-Token", "X-Password",
    ],
)  # fmt: skip
def test_secret_headers(name: str) -> None:
    assert is_secret_header(name)


@pytest.mark.parametrize("name", ["Content-Type", "Accept", "User-Agent", "X-Request-Id", "X-Custom-Header"])
def test_ordinary_headers_are_kept(name: str) -> None:
    assert not is_secret_header(name)


@pytest.mark.parametrize(
    "name", ["Keyboard", "Monkey", "X-Hub-Signature-256", "X-Csrf-Token", "WWW-Authenticate"]
)
def test_the_rule_is_containment_so_it_errs_on_the_side_of_hiding(name: str) -> None:
    # "contains key": a header called Keyboard is hidden too; a simple rule nobody has to guess.
    assert is_secret_header(name)


def test_redact_payload_drops_signing_secret_and_masks_headers() -> None:
    payload: dict[str, Any] = {
        "url": "https://example.com/hook",
        "headers": {"Authorization": "Bearer abc", "X-Api-Key": "k", "Content-Type": "application/json"},
        "body": {"authorization": "stays: bodies are the caller's data"},
        "signing_secret": "whsec_c2VjcmV0",
    }
    shown = redact_payload(payload)
    assert "signing_secret" not in shown
    assert shown["headers"] == {
        "Authorization": REDACTED,
        "X-Api-Key": REDACTED,
        "Content-Type": "application/json",
    }
    assert shown["body"] == payload["body"]
    assert payload["headers"]["Authorization"] == "Bearer abc"  # the original is untouched
    assert "abc" not in json.dumps(shown) and "c2VjcmV0" not in json.dumps(shown)
    assert redact_headers({}) == {}
    assert redact_payload({"headers": "not a mapping"}) == {"headers": "not a mapping"}


@pytest.mark.parametrize(
    "name",
    [
        "Host", "content-length", "Transfer-Encoding", "Connection", "TE", "Upgrade", "Keep-Alive",
        "Trailer", "Proxy-Authorization", "proxy-connection", "Webhook-Signature", "webhook-id",
    ],
)  # fmt: skip
def test_refused_header_names(name: str) -> None:
    problems = header_problems({"X-Fine": "1", name: "x"})
    assert [field for field, _ in problems] == [f"headers.{name}"]
    assert "set by the sender" in problems[0][1]


@pytest.mark.parametrize(
    ("headers", "field", "fragment"),
    [
        ({"Bad Name": "x"}, "headers.Bad Name", "not a valid header name"),
        ({"X-A:b": "x"}, "headers.X-A:b", "not a valid header name"),
        ({"": "x"}, "headers.", "not a valid header name"),
        ({"X-Inject": "a\r\nHost: evil"}, "headers.X-Inject", "control character"),
        ({"X-Nul": "a\x00b"}, "headers.X-Nul", "control character"),
        ({"X-A": "1", "x-a": "2"}, "headers.x-a", "given twice"),
    ],
)
def test_invalid_headers_name_the_field(headers: dict[str, str], field: str, fragment: str) -> None:
    problems = header_problems(headers)
    assert len(problems) == 1
    assert problems[0][0] == field and fragment in problems[0][1]


def test_tab_in_a_value_is_fine() -> None:
    assert header_problems({"X-Tab": "a\tb", "X-Empty": ""}) == []


def test_a_non_ascii_value_is_refused() -> None:
    # httpx cannot encode it and aiohttp sends UTF-8: no single byte string both would send.
    assert header_problems({"X-Unicode": "café"}) == [
        ("headers.X-Unicode", "the value must be printable ASCII (percent-encode anything else)")
    ]


def test_count_and_size_caps() -> None:
    assert header_problems({f"X-{i}": "v" for i in range(64)}) == []
    assert header_problems({f"X-{i}": "v" for i in range(65)}) == [("headers", "at most 64 headers")]
    big = {"X-Big": "v" * (16 * 1024)}
    assert header_problems(big, "payload.headers") == [
        ("payload.headers", "at most 16384 bytes of header names and values")
    ]
    assert header_problems({"X-Big": "v" * (16 * 1024 - 5)}) == []


def _nested(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"[1]" + b"}" * (depth - 1)


def test_raw_depth_cap_runs_before_decoding() -> None:
    assert raw_json_depth_problem(_nested(MAX_JSON_DEPTH)) is None
    assert raw_json_depth_problem(_nested(MAX_JSON_DEPTH + 1)) == (
        "payload",
        "JSON nested deeper than 32 levels",
    )
    hostile = b"[" * 200_000 + b"]" * 200_000
    with pytest.raises(RecursionError):  # why the check must run first
        msgspec.json.decode(hostile)
    started = time.monotonic()
    assert raw_json_depth_problem(hostile) is not None
    assert time.monotonic() - started < 1.0


def test_brackets_inside_strings_do_not_count() -> None:
    body = json.dumps({"text": "[[[[{{{{" * 50 + '\\" ]]] \\\\', "list": [[1], [2]]}).encode()
    assert raw_json_depth_problem(body, max_depth=3) is None
    assert raw_json_depth_problem(body, max_depth=2) is not None


def test_decoded_depth() -> None:
    value: object = 1
    for _ in range(MAX_JSON_DEPTH):
        value = [value]
    assert json_depth_problem(value) is None
    assert json_depth_problem({"k": value}, "body") == ("body", "JSON nested deeper than 32 levels")
    deep: object = []
    for _ in range(100_000):  # far past Python's recursion limit: the walk is iterative
        deep = [deep]
    assert json_depth_problem(deep) is not None
    assert json_depth_problem("scalar") is None
