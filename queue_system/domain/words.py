"""Words a person reads: counts with the right noun ("1 attempt", "2 attempts") and durations with
their unit ("250 ms", "30 s", "2.5 min"). One place, so the API's `last_error`, the CLI and the
dashboard say a number the same way. Pure functions, no I/O.
"""

from __future__ import annotations

# Nouns whose plural is not the noun + "s".
_IRREGULAR = {"entry": "entries", "retry": "retries", "address": "addresses"}


def plural(n: int, noun: str, many: str | None = None) -> str:
    """`plural(1, "task")` -> "1 task", `plural(2, "task")` -> "2 tasks", `plural(0, "task")` ->
    "0 tasks"; `many` overrides the plural form."""
    if n == 1:
        return f"{n} {noun}"
    return f"{n} {many or _IRREGULAR.get(noun, noun + 's')}"


def seconds(s: float) -> str:
    """A timeout as configured: `30` -> "30 s", `0.5` -> "0.5 s", `0.0004` -> "0.4 ms"."""
    if s < 1:
        return f"{s * 1000:g} ms"
    return f"{s:g} s"


def duration(ms: int | float) -> str:
    """An elapsed time, rounded to what matters: 250 -> "250 ms", 1500 -> "1.5 s", 150_000 ->
    "2.5 min", 9_000_000 -> "2.5 h", 200_000_000 -> "2.3 d"."""
    if ms < 1000:
        return f"{int(ms)} ms"
    s = ms / 1000
    for limit, div, unit in ((120, 1, "s"), (7200, 60, "min"), (172_800, 3600, "h")):
        if s < limit:
            return f"{s / div:.1f} {unit}".replace(".0 ", " ")
    return f"{s / 86_400:.1f} d".replace(".0 ", " ")
