"""`queue-system tasks submit --file tasks.jsonl`: many tasks through `POST /api/v1/tasks/batch`.

The file holds one task body per line (JSON Lines: exactly the body of `POST /api/v1/tasks`; blank
lines are skipped), `-` reads stdin. Lines go out in batches of `--batch-size`, one request at a
time; each line's result is printed as it comes back (`LINE STATUS ID-or-problem`), the counts at
the end. Exit 0 when every line was created or already there, 1 when any was refused; a batch the
API refused whole (503, 429, 413) stops the run, saying from which line to resend (lines with an
`id` are safe to send again).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

import click

from queue_system.cli.http import Api, CliError, Options, emit_json

BATCH = "/api/v1/tasks/batch"
DEFAULT_BATCH = 100


@dataclass(frozen=True, slots=True)
class Line:
    number: int  # 1-based, as an editor shows it
    body: Any = None
    error: str | None = None  # not JSON: never sent


@dataclass
class Tally:
    created: int = 0
    existing: int = 0
    failed: int = 0


def read_lines(stream: TextIO) -> Iterator[Line]:
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            yield Line(number, json.loads(text))
        except json.JSONDecodeError as exc:
            yield Line(number, error=f"not JSON ({exc.msg})")


def chunks(lines: Iterable[Line], size: int) -> Iterator[list[Line]]:
    batch: list[Line] = []
    for line in lines:
        batch.append(line)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def submit_file(opts: Options, stream: TextIO, batch_size: int) -> None:
    """Send the file's lines in batches; print each line's result; exit 1 if any line failed."""
    tally = Tally()
    results: list[dict[str, Any]] = []
    with Api(opts) as api:
        for batch in chunks(read_lines(stream), batch_size):
            for result in _send(api, batch):
                _count(tally, result["status"])
                if opts.as_json:
                    results.append(result)
                else:
                    click.echo(_row(result))
    if opts.as_json:
        emit_json(
            {"created": tally.created, "existing": tally.existing, "failed": tally.failed, "items": results}
        )
    else:
        click.echo(
            f"{tally.created} created, {tally.existing} already there, {tally.failed} failed", err=True
        )
    if tally.failed:
        raise SystemExit(1)


def _send(api: Api, batch: list[Line]) -> list[dict[str, Any]]:
    """Each line's result ({line, status, task | problem}); unreadable lines are not sent."""
    sendable = [line for line in batch if line.error is None]
    answered: dict[int, dict[str, Any]] = {}
    if sendable:
        try:
            response = api.call("POST", BATCH, body={"tasks": [line.body for line in sendable]})
        except CliError as exc:
            first = sendable[0].number
            # The same class: the exit code still says why (unreachable, unauthorized, ...).
            message = f"{exc.message}; lines from {first} on were not confirmed: resend them"
            raise type(exc)(message) from exc
        for line, item in zip(sendable, response.json()["items"], strict=True):
            answered[line.number] = {"line": line.number, **item}
    return [
        answered.get(line.number) or {"line": line.number, "status": 0, "error": line.error} for line in batch
    ]


def _count(tally: Tally, status: int) -> None:
    if status == 201:
        tally.created += 1
    elif status == 200:
        tally.existing += 1
    else:
        tally.failed += 1


def _row(result: dict[str, Any]) -> str:
    line, status = result["line"], result["status"]
    if "task" in result:
        verb = "created" if status == 201 else "exists "
        return f"{line:>6}  {status}  {verb}  {result['task']['id']}"
    if "problem" in result:
        # The detail names the item by its place in the request (`tasks[3].payload.url: ...`);
        # the line number printed first is what the user knows.
        detail = str(result["problem"].get("detail", ""))
        where = f"tasks[{result['index']}]"
        shown = detail[len(where) :].lstrip(".: ") if detail.startswith(where) else detail
        return f"{line:>6}  {status}  failed   {shown}"
    return f"{line:>6}  -    failed   {result['error']}"
