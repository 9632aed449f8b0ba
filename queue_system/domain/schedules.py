"""Schedules: when a schedule's ticks are, and which ticks one firing creates tasks for.

A schedule's timing is either a five-field cron expression (or an `@hourly`-style alias) read in
an IANA time zone, or a fixed period (`every`, at least 1 s). Cron is evaluated by cronsim, which
follows Debian cron on DST changes: a tick in the hour the clock skips fires once, right after the
jump; a tick in the hour the clock repeats fires once, in its first pass.

`plan(timing, current, now, policy)` is the whole firing decision, pure: the ticks to fire (oldest
first, each > the previous and <= now) and the next run (> now). The storage script then checks
that `current` is still the schedule's next run, so two workers planning the same firing create
its tasks once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from cronsim import CronSim, CronSimError

# `catch_up: all` fires at most this many missed ticks (the newest of them); older ones are skipped.
MAX_CATCH_UP = 100
# `catch_up: none`: a tick fired later than this after its time counts as missed (not fired).
MISSED_AFTER_MS = 60_000
MIN_EVERY_MS = 1_000
# How far back from now a plan first looks for the ticks it fires (then from the schedule's next run).
_WINDOWS_MS = (3_600_000, 86_400_000, 31 * 86_400_000, 366 * 86_400_000, 5 * 366 * 86_400_000)
# How many of a schedule's last tasks it lists.
MAX_LAST_TASKS = 20
# SCHEDULES_MAX's default: most schedules one deployment holds (a create beyond it is a 409).
MAX_SCHEDULES = 10_000

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@cache
def iana_zones() -> frozenset[str]:
    """The zone names a schedule may name: tzdata's list, without `localtime` (a link to the host's
    own zone: another instant on each worker host). A name is looked up here before ZoneInfo reads
    it as a file: a path, a leap-second `right/` zone or a 300-character name never gets that far."""
    return frozenset(available_timezones() - {"localtime"})


class CatchUp(StrEnum):
    LATEST = "latest"  # one firing (the newest missed tick) for all the ticks missed
    NONE = "none"  # missed ticks are skipped; only a tick less than MISSED_AFTER_MS late fires
    ALL = "all"  # every missed tick fires, oldest first, the newest MAX_CATCH_UP at most


class Overlap(StrEnum):
    """What a tick does while the schedule's previous task is unfinished (Kubernetes CronJob's
    `concurrencyPolicy` Allow and Forbid; its Replace is not offered: docs/schedules.md says why)."""

    ALLOW = "allow"  # fire anyway: one task per tick, however many are still waiting or running
    SKIP = "skip"  # skip the tick (counted) until that task completed, failed, was cancelled or is gone


class TimingError(ValueError):
    """`field` names the culprit (`cron`, `timezone`, `every`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Timing:
    cron: str | None = None
    timezone: str = "UTC"
    every_ms: int | None = None

    def next_after(self, after_ms: int) -> int:
        """The first tick strictly after `after_ms` (epoch ms)."""
        if self.every_ms is not None:
            return (after_ms // self.every_ms + 1) * self.every_ms
        assert self.cron is not None
        zone = ZoneInfo(self.timezone)
        start = datetime.fromtimestamp(after_ms / 1000, tz=UTC).astimezone(zone)
        for tick in CronSim(ALIASES.get(self.cron, self.cron), start):
            ms = int(tick.timestamp() * 1000)
            if ms > after_ms:  # cronsim starts at the whole minute: never the same instant again
                return ms
        raise TimingError("cron", "has no next run")  # pragma: no cover - cronsim iterates forever


def every_text(ms: int) -> str:
    """A period as `every` is written: 60000 -> `1m`, 5400000 -> `90m`, 3600000 -> `1h`, 45000 -> `45s`."""
    s = ms // 1000
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if s and s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


def timing(cron: str | None, timezone: str | None, every_ms: int | None) -> Timing:
    """A checked timing: exactly one of cron and every; a cron that parses; a known time zone."""
    if (cron is None) == (every_ms is None):
        raise TimingError("cron", "give either `cron` or `every`")
    if every_ms is not None:
        if timezone is not None:
            raise TimingError("timezone", "goes with `cron` only")
        if every_ms < MIN_EVERY_MS:
            raise TimingError("every", "must be at least 1s")
        if every_ms % 1000:
            raise TimingError("every", "must be a whole number of seconds")
        return Timing(every_ms=every_ms)
    assert cron is not None
    zone = timezone or "UTC"
    if zone not in iana_zones():
        raise TimingError("timezone", f"not an IANA time zone: {zone[:64]!r}")
    expr = " ".join(cron.split())
    if len(expr.split(" ")) != 5 and expr not in ALIASES:
        raise TimingError("cron", "five fields (minute hour day month weekday) or @hourly, @daily ...")
    try:
        CronSim(ALIASES.get(expr, expr), datetime(2000, 1, 1, tzinfo=UTC))
    except (CronSimError, ValueError) as exc:
        raise TimingError("cron", f"not a cron expression: {exc}") from None
    return Timing(cron=expr, timezone=zone)


@dataclass(frozen=True, slots=True)
class Plan:
    ticks: list[int]  # to fire now, oldest first
    next_run: int  # > now


def _ticks(t: Timing, after: int, until: int) -> Iterator[int]:
    """A cron's ticks in (after, until], oldest first, from one CronSim (building one per tick cost
    54 us each, iterating one 5 us)."""
    assert t.cron is not None
    start = datetime.fromtimestamp(after / 1000, tz=UTC).astimezone(ZoneInfo(t.timezone))
    for tick in CronSim(ALIASES.get(t.cron, t.cron), start):
        ms = int(tick.timestamp() * 1000)
        if ms > until:
            return
        if ms > after:
            yield ms


def _newest_ticks(t: Timing, current: int, now: int, want: int) -> list[int]:
    """The newest `want` (at most) of the ticks from `current` (a tick, <= now) to `now`. Walked from
    `now` minus a window that widens until it holds `want` ticks or reaches `current`, so the work
    is bounded by the ticks kept, not by how long the schedule was down."""
    for window in _WINDOWS_MS:
        start = now - window
        if start <= current:
            break
        kept = deque(_ticks(t, start, now), maxlen=want)
        if len(kept) == want:
            return list(kept)
    kept = deque([current], maxlen=want)
    kept.extend(_ticks(t, current, now))
    return list(kept)


def plan(t: Timing, current: int, now: int, policy: CatchUp) -> Plan:
    """The firing of a schedule whose next run is `current` (<= now: it is due)."""
    if current > now:
        return Plan([], current)
    if t.every_ms is not None:  # a period: the missed ticks are arithmetic, however many
        latest = now // t.every_ms * t.every_ms
        count = min((latest - current) // t.every_ms + 1, MAX_CATCH_UP)
        due = [latest - i * t.every_ms for i in reversed(range(count))]
        nxt = latest + t.every_ms
    else:
        due = _newest_ticks(t, current, now, MAX_CATCH_UP if policy is CatchUp.ALL else 1)
        nxt = t.next_after(now)
    if policy is CatchUp.ALL:
        return Plan(due, nxt)
    latest = due[-1]
    if policy is CatchUp.NONE and now - latest > MISSED_AFTER_MS:
        return Plan([], nxt)
    return Plan([latest], nxt)
