"""`queue-system stats | workers | destinations`: what the API reports about the queue and its
fleet, as tables (or the API's JSON with `--json`). Options and exit codes: cli/client.py."""

from __future__ import annotations

import click

from queue_system.cli import render
from queue_system.cli.http import Api, Options, client_command, emit_json


@click.command()
@client_command
def stats(opts: Options) -> None:
    """Counts by status and type, queue depths.

    Also the delayed tasks (scheduled or waiting to retry) and the oldest pending age."""
    with Api(opts) as api:
        data = api.json("GET", "/api/v1/stats")
    if opts.as_json:
        emit_json(data)
    else:
        click.echo(render.stats(data))


def _report(opts: Options, path: str, what: str) -> None:
    with Api(opts) as api:
        data = api.json("GET", path, missing=f"this server does not report {what} yet")
    if opts.as_json:
        emit_json(data)
    else:
        click.echo(render.records(data, what))


@click.command()
@client_command
def workers(opts: Options) -> None:
    """Workers alive and their heartbeat age.

    GET /api/v1/workers; a server without it: exit 3."""
    _report(opts, "/api/v1/workers", "workers")


@click.command()
@client_command
def destinations(opts: Options) -> None:
    """Webhook hosts and endpoints and their breaker state.

    GET /api/v1/destinations; a server without it: exit 3."""
    with Api(opts) as api:
        data = api.json("GET", "/api/v1/destinations", missing="this server does not report destinations yet")
    if opts.as_json:
        emit_json(data)
    else:
        click.echo(
            render.destinations(data) if isinstance(data, dict) else render.records(data, "destinations")
        )


COMMANDS: list[click.Command] = [stats, workers, destinations]
