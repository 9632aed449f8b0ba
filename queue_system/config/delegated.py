"""Parsers of settings whose rules live elsewhere in the product: rate limits (storage/rate_limit.py),
egress ranges and ports (transports/egress.py), signing secrets (transports/signing.py), API keys
(checked entry by entry in api/auth.py). Each checks the text at start-up, so a bad value stops it
with the variable's name, and keeps the form its consumer reads."""

from __future__ import annotations

from pathlib import Path

from queue_system.config.parsing import Parser
from queue_system.storage.connection import parse_sentinels
from queue_system.storage.rate_limit import Rate
from queue_system.transports.egress import parse_cidrs, parse_ports
from queue_system.transports.egress_ranges import IPNetwork
from queue_system.transports.signing import parse_secrets

# The variable's name in these messages is put there by the Setting (declare.py), once.
_NO_NAME = ""


def _key_list(value: str) -> str:
    # Checked entry by entry when the API builds its key ring (api/auth.py): the rules live there.
    return ",".join(item.strip() for item in value.split(",") if item.strip())


def key_list() -> Parser[str]:
    return Parser(_key_list, "keys, comma-separated")


def _keys_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise ValueError(f"{value!r} is not a readable file")
    return path


def keys_file() -> Parser[Path]:
    return Parser(_keys_file, "a file")


def _cidr_text(value: str) -> str:
    parse_cidrs(value, _NO_NAME)  # the policy is built from the text (transports.egress)
    return value.strip()


def cidr_text() -> Parser[str]:
    return Parser(_cidr_text, "CIDRs, comma-separated")


def networks() -> Parser[tuple[IPNetwork, ...]]:
    return Parser(lambda value: parse_cidrs(value, _NO_NAME), "CIDRs, comma-separated")


def _ports(value: str) -> str:
    parse_ports(value, _NO_NAME)
    return value.strip()


def ports() -> Parser[str]:
    return Parser(_ports, "ports and ranges: `80,443,8000-8099`")


def _signing_secrets(value: str) -> str:
    parse_secrets(value)  # its messages never show the secret itself
    return " ".join(value.split())


def signing_secrets() -> Parser[str]:
    return Parser(_signing_secrets, "`whsec_...`, space-separated")


def rate(allowed: str) -> Parser[Rate]:
    return Parser(Rate.parse, f"a rate: {allowed}")


def sentinels() -> Parser[tuple[tuple[str, int], ...]]:
    return Parser(parse_sentinels, "`host:port`, comma-separated")
