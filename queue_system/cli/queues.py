"""`queue-system queues`: each queue's depth, pause state and oldest waiting task; pause, resume.

    queue-system queues                  the table (or --json: GET /api/v1/queues)
    queue-system queues pause NAME       its tasks wait, held, until resumed (idempotent)
    queue-system queues resume NAME      its held tasks run again, oldest first (idempotent)

An unknown NAME is exit 3 (the API's 404 names the queues there are); the other exit codes are
those of every client command (cli/client.py).
"""

from __future__ import annotations

from typing import Any

import click

from queue_system.cli import render
from queue_system.cli.http import Api, Options, client_command, emit_json, segment

QUEUES = "/api/v1/queues"


def table(items: list[dict[str, Any]]) -> str:
    rows = [
        (
            q["name"],
            "paused" if q["paused"] else "running",
            q["depth"],
            q["held"],
            render.millis(q.get("oldest_age_ms")) or "-",
            render.when(q.get("paused_at")) or "-",
        )
        for q in items
    ]
    return render.table(("QUEUE", "STATE", "DEPTH", "HELD", "OLDEST", "PAUSED_AT (UTC)"), rows)


@click.group(invoke_without_command=True)
@client_command
def queues(opts: Options) -> None:
    """Show the queues (depth, paused, oldest waiting task); pause or resume one."""
    if click.get_current_context().invoked_subcommand is not None:
        return
    with Api(opts) as api:
        data = api.json("GET", QUEUES)
    if opts.as_json:
        emit_json(data)
    else:
        click.echo(table(data["items"]))


def _change(opts: Options, name: str, action: str) -> None:
    with Api(opts) as api:
        data = api.json("POST", f"{QUEUES}/{segment(name, 'queue name')}/{action}")
    if opts.as_json:
        emit_json(data)
        return
    note = f", {data['released']} held task(s) dispatched again" if data.get("released") else ""
    state = "paused" if data["paused"] else "running"
    click.echo(f"queue {data['name']}: {state} (depth {data['depth']}, held {data['held']}){note}")


@queues.command()
@click.argument("name")
@client_command
def pause(opts: Options, name: str) -> None:
    """Pause queue NAME: submits are still accepted; workers start none of its tasks; attempts under
    way finish. Repeating it changes nothing."""
    _change(opts, name, "pause")


@queues.command()
@click.argument("name")
@client_command
def resume(opts: Options, name: str) -> None:
    """Resume queue NAME: the tasks it held are dispatched again, oldest first."""
    _change(opts, name, "resume")


COMMANDS: list[click.Command] = [queues]
