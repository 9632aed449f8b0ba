"""`queue-system` commands for a developer's machine: `inbox` (what the development inbox
received) and `config` (where the client commands point, and why). Both talk to the API like the
other client commands (`queue_system.cli.client`), with the same options and exit codes."""

from __future__ import annotations

import click

from queue_system.cli import render as render
from queue_system.cli.http import Api, CliError, Options, client_command, emit_json

INBOX = "/api/v1/dev/inbox"
NO_INBOX = "this server has no development inbox (DEV_INBOX is off; `make run` turns it on in development)"


@click.command()
@click.argument("name", required=False)
@click.option("--limit", type=click.IntRange(1, 50), default=10, show_default=True, help="Requests shown.")
@client_command
def inbox(opts: Options, name: str | None, limit: int) -> None:
    """What the development inbox received (`make run`).

    Without NAME: the inboxes; with NAME: its latest requests, newest first, with their headers
    (credentials redacted), signature check and body. Webhooks to <url>/dev/inbox/NAME land there."""
    with Api(opts) as api:
        if name is None:
            data = api.json("GET", INBOX, missing=NO_INBOX)
        else:
            data = api.json("GET", f"{INBOX}/{name}", params={"limit": limit}, missing=NO_INBOX)
    if opts.as_json:
        emit_json(data)
    elif not data["items"]:
        where = f"{opts.url}/dev/inbox/{name or 'NAME'}"
        click.echo(f"{'nothing in ' + name if name else 'no inbox yet'}: webhooks to {where} land here")
    else:
        click.echo(render.inbox_requests(data["items"]) if name else render.inboxes(data["items"]))


@click.command()
@client_command
def config(opts: Options) -> None:
    """Where the client commands point, and why; whether the server answers there.

    Secrets are never printed: an API key shows as set or unset."""
    key = f"set ({opts.key_from})" if opts.api_key else "unset (--api-key, QUEUE_SYSTEM_API_KEY)"
    try:
        with Api(opts) as api:
            api.call("GET", "/health")
        health = "answers (GET /health: 200)"
    except CliError as exc:
        health = f"does not answer: {exc.message}"
    if opts.as_json:
        emit_json(
            {"url": opts.url, "url_from": opts.url_from, "api_key": bool(opts.api_key), "server": health}
        )
        return
    click.echo(f"url:      {opts.url}  ({opts.url_from})")
    click.echo(f"api key:  {key}")
    click.echo(f"timeout:  {opts.timeout:g} s")
    click.echo(f"server:   {health}")


COMMANDS: list[click.Command] = [inbox, config]
