"""Plain-text output of the `queue-system` client commands: aligned columns, no colours, no wide
characters, so it reads the same in a terminal, a log file and an email.

What a task carries comes from strangers (a receiver's answer, a payload), so control and format
characters in it are printed as visible escapes (`visible`): an ESC or BEL would reach the
terminal as a command (ESC ] 52 writes the clipboard), U+202E would reverse what follows.
`--json` prints the API's data as it is, for scripts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from queue_system.domain.words import duration, plural

CELL = 60  # longer cells are cut: a table row stays on one line in a wide terminal


def rfc3339(when: datetime) -> str:
    """-> `2026-11-23T09:27:06.952Z`, the API's own format."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def visible(text: str) -> str:
    """`text` with every character that is neither printable nor a newline or tab as an escape
    (`\\x1b`, `\\u202e`)."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"
        for c in text
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = [list(headers), *cells]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = visible(" ".join(text.split()))  # error messages and response bodies may span lines
    return text if len(text) <= CELL else text[: CELL - 3] + "..."


def when(text: str | None) -> str | None:
    """`2026-11-23T09:27:06.952Z` -> `2026-11-23 09:27:06` (the columns say UTC)."""
    return text[:19].replace("T", " ") if text else None


def millis(ms: int | None) -> str | None:
    return None if ms is None else duration(ms)


def task_table(tasks: Sequence[dict[str, Any]]) -> str:
    return table(
        ("ID", "TYPE", "STATUS", "QUEUE", "ATTEMPTS", "CREATED (UTC)", "LAST ERROR"),
        [
            (
                t["id"],
                t["type"],
                t["status"],
                t["queue"],
                t["attempts"],
                when(t["created_at"]),
                t.get("last_error"),
            )
            for t in tasks
        ],
    )


def task_detail(task: dict[str, Any]) -> str:
    fields = [
        ("id", task["id"]),
        ("type", task["type"]),
        ("status", task["status"]),
        ("queue", task["queue"]),
        ("attempts", task["attempts"]),
        ("created (UTC)", when(task["created_at"])),
        ("updated (UTC)", when(task["updated_at"])),
        ("next attempt (UTC)", when(task.get("next_attempt_at"))),
        ("completed (UTC)", when(task.get("completed_at"))),
        ("last error", task.get("last_error")),
        ("result", task.get("result")),
        ("retry", task.get("retry")),
    ]
    width = max(len(name) for name, _ in fields)
    lines = [f"{name + ':':<{width + 1}}  {_text(value)}" for name, value in fields if value is not None]
    lines += ["", "payload:", visible(json.dumps(task.get("payload"), indent=2, ensure_ascii=False)), ""]
    history = task.get("attempt_history") or []
    lines.append(f"attempts ({len(history)} kept):" if history else "attempts: none yet")
    if history:
        lines.append(timeline(history))
    return "\n".join(lines)


def _text(value: Any) -> str:
    return visible(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def timeline(history: Sequence[dict[str, Any]]) -> str:
    """One row per attempt, oldest first: what started it, how it ended, what the receiver said."""
    return table(
        ("#", "STARTED (UTC)", "TRIGGER", "OUTCOME", "CODE", "DURATION", "ERROR / RESPONSE"),
        [
            (
                a["n"],
                when(a["started_at"]),
                a.get("trigger", "auto"),
                a["outcome"],
                a.get("status_code"),
                millis(a.get("duration_ms")),
                a.get("error") or a.get("response_body"),
            )
            for a in history
        ],
    )


def stats(data: dict[str, Any]) -> str:
    parts = [
        table(("STATUS", "TASKS"), list(data.get("by_status", {}).items())),  # the lifecycle order
        table(("TYPE", "TASKS"), sorted(data.get("by_type", {}).items())),
        table(
            ("QUEUE", "READY", "DEAD"),
            [(name, q.get("ready"), q.get("dead")) for name, q in sorted(data.get("queues", {}).items())],
        ),
        f"delayed (scheduled or waiting to retry): {data.get('delayed', 0)}\n"
        f"oldest pending: {millis(data.get('oldest_pending_age_ms')) or 'none'}",
    ]
    return "\n\n".join(parts)


def destinations(data: dict[str, Any]) -> str:
    """GET /api/v1/destinations as two tables: the hosts, then the endpoints (domain/destinations.py)."""
    columns = ("STATE", "IN FLIGHT", "FAILURES", "PARKED", "NEXT PROBE", "LAST ERROR")

    def rows(items: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [
            (
                d["destination"],
                d["state"],
                d["in_flight"],
                d["failures"],
                d["parked"],
                when(d["next_probe_at"]) if d.get("next_probe_at") else None,
                d.get("last_error"),
            )
            for d in items
        ]

    parts = []
    for name, items, known, n_open in (
        ("HOST", data.get("items", []), data.get("known", 0), data.get("open", 0)),
        (
            "ENDPOINT",
            data.get("endpoints", []),
            data.get("endpoints_known", 0),
            data.get("endpoints_open", 0),
        ),
    ):
        summary = f"{plural(known, name.lower())} known, {n_open} open"
        parts.append(table((name, *columns), rows(items)) + "\n" + summary if items else summary)
    parts.append(f"parked tasks: {data.get('parked', 0)}")
    return "\n\n".join(parts)


def records(data: Any, what: str) -> str:
    """A table of whatever list of objects an endpoint returns (`[...]`, `{"items": [...]}` or
    `{"<what>": [...]}`); anything else as indented JSON."""
    rows = data
    if isinstance(data, dict):
        rows = data.get(what, data.get("items", data))
    if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
        if not rows:
            return f"no {what}"
        columns = list(dict.fromkeys(key for row in rows for key in row))
        return table([c.upper() for c in columns], [[row.get(c) for c in columns] for row in rows])
    return json.dumps(data, indent=2, ensure_ascii=False)


def inboxes(items: Sequence[dict[str, Any]]) -> str:
    return table(
        ("INBOX", "REQUESTS", "LAST (UTC)"),
        [(i["name"], i["requests"], when(i["last_received_at"])) for i in items],
    )


def inbox_requests(items: Sequence[dict[str, Any]]) -> str:
    """Each request as a block, newest first: what arrived, its headers, its body."""
    blocks = []
    for r in items:
        task = f"  task {r['task_id']}" if r.get("task_id") else ""
        size = plural(r["body_bytes"], "byte")
        cut = " (first 16 KiB shown)" if r.get("truncated") else ""
        lines = [f"{when(r['received_at'])} UTC  {r['method']} {r['path']}  signature {r['signature']}{task}"]
        lines += [f"  {name}: {value}" for name, value in r["headers"]]
        lines += [f"  body ({size}){cut}:", *(f"    {line}" for line in (r["body"] or "").splitlines())]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
