"""Retry policies as values: a tagged union, resolved once at submit and stored as typed JSON.

Lives apart from `retry.py` (which decides with them) so that `models.Task` can name the type
without an import cycle; `retry.py` re-exports everything here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

# The retry options as the client wrote them (`{"interval": "2s"}`), kept to show them back.
Requested = dict[str, str | int]


class FixedPolicy(msgspec.Struct, frozen=True, omit_defaults=True, tag="fixed", tag_field="strategy"):
    """Every `interval_ms` until `max_age_ms` after creation (webhooks: every 10 s for 24 h)."""

    interval_ms: int
    max_age_ms: int
    max_retries: int | None = None  # None: only the deadline bounds the retries
    requested: Requested | None = None  # set when the task overrides its kind's default


class ExponentialPolicy(
    msgspec.Struct, frozen=True, omit_defaults=True, tag="exponential", tag_field="strategy"
):
    """Up to `max_retries` retries, waiting between `min_delay_ms` and `max_delay_ms` (full jitter)."""

    max_retries: int
    min_delay_ms: int
    max_delay_ms: int
    requested: Requested | None = None


RetryPolicy = FixedPolicy | ExponentialPolicy
Strategy = Literal["fixed", "exponential"]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(RetryPolicy)


def encode_policy(policy: RetryPolicy) -> str:
    return _encoder.encode(policy).decode()


def decode_policy(text: str) -> RetryPolicy:
    policy: RetryPolicy = _decoder.decode(text)
    return policy


@dataclass(frozen=True, slots=True)
class RetryOverride:
    """A task's own retry options, durations in ms; None keeps the kind's default for that field."""

    requested: Requested  # as written, for display
    strategy: Strategy | None = None
    max_retries: int | None = None
    interval_ms: int | None = None
    max_age_ms: int | None = None
    min_delay_ms: int | None = None
    max_delay_ms: int | None = None


def strategy_of(policy: RetryPolicy) -> Strategy:
    return "fixed" if isinstance(policy, FixedPolicy) else "exponential"


def resolve_policy(
    override: RetryOverride | None,
    kind_default: RetryPolicy,
    fixed: FixedPolicy,
    exponential: ExponentialPolicy,
) -> RetryPolicy:
    """A task's policy: its kind's default with the fields the task overrides. Switching strategy
    starts from the server's default for that strategy; options of the other strategy are ignored."""
    if override is None:
        return kind_default
    strategy = override.strategy or strategy_of(kind_default)
    base: RetryPolicy
    if strategy == strategy_of(kind_default):
        base = kind_default
    else:
        base = fixed if strategy == "fixed" else exponential
    changes = {
        name: value
        for name in base.__struct_fields__
        if name != "requested" and (value := getattr(override, name)) is not None
    }
    return msgspec.structs.replace(base, **changes, requested=override.requested)
