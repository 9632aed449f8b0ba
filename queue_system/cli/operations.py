"""Bulk actions from the command line: `queue-system tasks retry|cancel|delete` with filters instead of
an id start an operation (POST /api/v1/tasks/actions/{action}), and `--wait` shows its progress until
it ends; `queue-system operations [show ID | cancel ID]` reads them (docs/bulk.md).

    queue-system tasks retry --status failed --since 2h --destination https://hooks.example.com --wait
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from queue_system.cli import render
from queue_system.cli.http import Api, CliError, Options, client_command, confirm, emit_json, segment
from queue_system.config.parsing import parse_duration_ms
from queue_system.domain.models import TaskStatus

OPERATIONS = "/api/v1/operations"
POLL_S = 0.5
_STATUS = click.Choice([s.value for s in TaskStatus])


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return timedelta(milliseconds=parse_duration_ms(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def bulk_options(f: Callable[..., None]) -> Callable[..., None]:
    """The filters of `tasks list`, plus --since, --all, --rate and --wait."""
    options = [
        click.option("--status", "statuses", multiple=True, type=_STATUS, help="Repeatable."),
        click.option("--type", "task_type", help="Only tasks of this type."),
        click.option("--queue", help="Only tasks on this queue."),
        click.option("--destination", metavar="URL", help="Only webhooks to this host (https://h.example)."),
        click.option("--endpoint", metavar="URL", help="Only webhooks to this URL (its query aside)."),
        click.option("--schedule", "schedule_id", metavar="ID", help="Only tasks this schedule created."),
        click.option("--since", callback=_since, help="Only tasks created within this long: 2h, 30m, 7d."),
        click.option("--all", "every", is_flag=True, help="Every task (instead of filters)."),
        click.option("--rate", type=click.IntRange(1), help="Tasks per second at most (default: BULK_RATE)."),
        click.option("--wait", is_flag=True, help="Show progress until the operation ends."),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


def bulk_body(given: dict[str, Any]) -> dict[str, Any] | None:
    """The request body of the filters given, or None when none is (a single-task command)."""
    body: dict[str, Any] = {}
    if given.get("statuses"):
        body["status"] = list(given["statuses"])
    for option, field in (("task_type", "type"), ("queue", "queue"), ("destination", "destination"),
                          ("endpoint", "endpoint"), ("schedule_id", "schedule_id")):  # fmt: skip
        if given.get(option):
            body[field] = given[option]
    since: timedelta | None = given.get("since")
    if since is not None:
        body["created_after"] = render.rfc3339(datetime.now(UTC) - since)
    if given.get("every"):
        body["all"] = True
    if not body:
        return None
    if given.get("rate"):
        body["rate"] = given["rate"]
    return body


def progress_line(op: dict[str, Any]) -> str:
    pct = round(100 * float(op["progress"]))
    return (
        f"{op['action']} {op['id'][:8]}: {op['state']} {pct}%  done {op['done']}, skipped {op['skipped']}, "
        f"failed {op['failed']} (of {op['total']} at most, {op['rate']}/s)"
    )


def start(opts: Options, action: str, body: dict[str, Any], wait: bool, *, ask: bool = False) -> None:
    """Start an operation; with `wait`, poll it to its end (exit 1 unless it is done)."""
    if ask:
        confirm(f"Delete every task matching {body}?")
    with Api(opts) as api:
        op = api.json("POST", f"/api/v1/tasks/actions/{action}", body=body)
        if not wait:
            emit_json(op) if opts.as_json else click.echo(f"operation {op['id']}: {progress_line(op)}")
            return
        while op["state"] == "running":
            click.echo(progress_line(op), err=True)
            time.sleep(POLL_S)
            op = api.json("GET", f"{OPERATIONS}/{op['id']}")
    emit_json(op) if opts.as_json else click.echo(progress_line(op))
    if op["state"] != "done":
        raise CliError(f"operation {op['id']} ended {op['state']}")


@click.group(invoke_without_command=True)
@client_command
def operations(opts: Options) -> None:
    """Bulk operations: `operations` lists them, newest first; `show ID`, `cancel ID`."""
    if click.get_current_context().invoked_subcommand is None:
        _list(opts)


@operations.command("list")
@client_command
def list_operations(opts: Options) -> None:
    """List bulk operations, newest first."""
    _list(opts)


def _list(opts: Options) -> None:
    with Api(opts) as api:
        page = api.json("GET", OPERATIONS, params={"limit": 50})
    if opts.as_json:
        emit_json(page)
        return
    rows = [[o["id"], o["action"], o["state"], f"{round(100 * o['progress'])}%", o["done"], o["skipped"],
             o["failed"], o["created_at"]] for o in page["items"]]  # fmt: skip
    click.echo(
        render.table(["id", "action", "state", "progress", "done", "skipped", "failed", "created"], rows)
    )


@operations.command("show")
@click.argument("operation_id")
@client_command
def show_operation(opts: Options, operation_id: str) -> None:
    """One operation: its filter, counters and progress."""
    with Api(opts) as api:
        op = api.json("GET", f"{OPERATIONS}/{segment(operation_id, 'operation id')}")
    emit_json(op) if opts.as_json else click.echo(f"{progress_line(op)}\nfilter: {op['filter']}")


@operations.command("cancel")
@click.argument("operation_id")
@client_command
def cancel_operation(opts: Options, operation_id: str) -> None:
    """Stop a running operation (what it did stays done). One that ended already: exit 4."""
    with Api(opts) as api:
        op = api.json("POST", f"{OPERATIONS}/{segment(operation_id, 'operation id')}/cancel")
    emit_json(op) if opts.as_json else click.echo(progress_line(op))
