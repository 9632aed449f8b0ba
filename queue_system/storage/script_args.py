"""The arguments of the hot scripts, each named once, in their order.

A script's ARGV is a NamedTuple here: the caller builds it by name (mypy checks every field),
`list(args)` is the ARGV, and storage/scripts.py renders the same fields into the script's first
line as locals (`local id, token = ARGV[1], ARGV[2]`), so the Lua reads `now`, never `ARGV[3]`,
and the two sides cannot drift apart. A field's comment says what the script takes.

Only what a script cannot know is an argument: key names follow from the prefix (KEYS[1]) and
the prelude's helpers, constants (MAX_HISTORY) are rendered into the prelude; each argument costs
Redis a little on every call.
"""

from __future__ import annotations

from typing import NamedTuple

from queue_system.domain.destinations import DestinationLimits


class CreateEach(NamedTuple):
    """One task lua/create.lua stores; then its n_extra optional hash fields, field, value, ..."""

    id: str
    task_type: str
    queue: str
    now: int
    status: str  # pending | scheduled
    due: int | str  # epoch ms when scheduled, else ''
    fingerprint: str
    payload: str  # JSON
    n_extra: int  # how many values follow (twice the optional fields)


class ClaimArgs(NamedTuple):
    """lua/claim.lua; then a ClaimEach per message to claim."""

    host_cap: int
    endpoint_cap: int


class ClaimEach(NamedTuple):
    """One message lua/claim.lua claims (its `claim` function's parameters, in this order)."""

    id: str
    token: int
    now: int
    lease_until: int


class Limits(NamedTuple):
    """The destinations' limits, as lua/destinations.lua `settle` takes them (finish's last six)."""

    host_cap: int
    threshold: int  # failures in a row that open a breaker
    cooldown_ms: int
    max_cooldown_ms: int
    hold_ms: int
    endpoint_cap: int

    @classmethod
    def of(cls, lim: DestinationLimits) -> Limits:
        return cls(
            lim.max_inflight,
            lim.breaker_threshold,
            lim.cooldown_ms,
            lim.max_cooldown_ms,
            lim.hold_ms,
            lim.endpoint_cap,
        )


class FinishArgs(NamedTuple):
    """lua/finish.lua: what every attempt shares; then a FinishEach per attempt."""

    retention_ms: int
    host_cap: int
    threshold: int  # failures in a row that open a breaker
    cooldown_ms: int
    max_cooldown_ms: int
    hold_ms: int
    endpoint_cap: int

    @classmethod
    def of(cls, retention_ms: int, lim: Limits) -> FinishArgs:
        return cls(retention_ms, *lim)


class FinishEach(NamedTuple):
    """One attempt lua/finish.lua records (its `finish` function's parameters, in this order)."""

    id: str
    token: int
    now: int
    status: str  # completed | retrying | failed
    next_attempt_at: int | str  # retrying: epoch ms, else ''
    entry: str  # the attempt, for the history (JSON)
    result: str  # completed: the handler's result (JSON), else ''
    last_error: str  # retrying, failed: else ''
    consumer: str  # the broker whose consumer fetched the message ('': nothing to acknowledge)
    queue: str  # the queue it was fetched from
    signal: str  # the breaker signal: up | endpoint | host | '' (no destination)


class UnclaimArgs(NamedTuple):
    """lua/unclaim.lua."""

    id: str
    token: int  # the claimed message's
    now: int
    trigger: str  # as the claim returned it
    consumer: str  # as FinishArgs
    queue: str


# Each script's arguments, by the name of its file (storage/scripts.py renders them).
ARGS: dict[str, tuple[str, ...]] = {
    "claim": ClaimArgs._fields,
    "finish": FinishArgs._fields,
    "unclaim": UnclaimArgs._fields,
}


def render(fields: tuple[str, ...]) -> str:
    """The Lua lines that name a script's ARGV; N_ARGS: how many are named (more may follow)."""
    names = ", ".join(fields)
    values = ", ".join(f"ARGV[{i}]" for i in range(1, len(fields) + 1))
    return f"local {names} = {values}\nlocal N_ARGS = {len(fields)}\n"


# The arguments per item after the named ones, for the scripts that take many (storage/scripts.py).
EACH = {"create": len(CreateEach._fields), "claim": len(ClaimEach._fields), "finish": len(FinishEach._fields)}
