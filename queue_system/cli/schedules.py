"""`queue-system schedules`: periodic tasks over the HTTP API (docs/schedules.md), with the same
client options, output and exit codes as the other client commands (`queue_system.cli.client`).

    queue-system schedules [list]          id, timing, time zone, paused, next and last run
    queue-system schedules show ID         its fields, task template and last tasks
    queue-system schedules create --every 1m | --cron '0 3 * * *' [--timezone Z] --task '{...}'
    queue-system schedules pause|resume|delete ID
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from queue_system.cli import render as render
from queue_system.cli.client import _json_arg
from queue_system.cli.http import Api, Options, client_command, confirm, emit_json, segment
from queue_system.domain.schedules import every_text
from queue_system.domain.words import plural

SCHEDULES = "/api/v1/schedules"
PAGE = 500  # the API's largest page
MAX_LISTED = 10_000  # `--all` stops here
LAST_SHOWN = 20  # a schedule keeps its 20 newest task ids


def timing_text(s: dict[str, Any]) -> str:
    return f"every {every_text(s['every_ms'])}" if s.get("every_ms") else f"cron {s['cron']}"


def schedule_table(items: list[dict[str, Any]]) -> str:
    return render.table(
        ("ID", "TIMING", "TIMEZONE", "PAUSED", "NEXT RUN (UTC)", "LAST RUN (UTC)"),
        [
            (
                s["id"],
                timing_text(s),
                s.get("timezone"),
                "yes" if s["paused"] else "no",
                render.when(s.get("next_run_at")),
                render.when(s.get("last_run_at")),
            )
            for s in items
        ],
    )


def schedule_detail(s: dict[str, Any], tasks: list[dict[str, Any]]) -> str:
    fields = [
        ("id", s["id"]),
        ("timing", timing_text(s)),
        ("timezone", s.get("timezone")),
        ("catch up", s["catch_up"]),
        ("overlap", s.get("overlap")),
        ("skipped ticks", s.get("skipped_ticks")),
        ("paused", "yes" if s["paused"] else "no"),
        ("next run (UTC)", render.when(s.get("next_run_at")) or "-"),
        ("last run (UTC)", render.when(s.get("last_run_at")) or "never"),
        ("created (UTC)", render.when(s["created_at"])),
    ]
    width = max(len(name) for name, _ in fields)
    lines = [f"{name + ':':<{width + 1}}  {render.visible(str(v))}" for name, v in fields if v is not None]
    lines += ["", "task:", render.visible(json.dumps(s["task"], indent=2, ensure_ascii=False)), ""]
    if not tasks:
        lines.append("last tasks: none yet")
    else:
        lines += [f"last tasks ({plural(len(tasks), 'task')}, newest first):", render.task_table(tasks)]
    return "\n".join(lines)


def _list(opts: Options, limit: int | None, cursor: str | None, follow: bool) -> None:
    page = limit or (PAGE if follow else 50)
    items: list[Any] = []
    with Api(opts) as api:
        while True:
            query: dict[str, Any] = {"limit": page} | ({"cursor": cursor} if cursor else {})
            answer = api.json("GET", SCHEDULES, params=query)
            items += answer["items"]
            cursor = answer.get("next_cursor")
            if not cursor or not follow or len(items) >= MAX_LISTED:
                break
    if opts.as_json:
        emit_json({"items": items, "next_cursor": cursor})
        return
    click.echo(schedule_table(items) if items else "no schedules")
    if cursor:
        click.echo(f"more schedules: add --cursor {cursor}", err=True)


_LIST_OPTIONS = (
    click.option("--limit", type=click.IntRange(1, PAGE), help="Schedules per page: 50, or 500 with --all."),
    click.option("--cursor", help="Continue from the `next_cursor` of a previous list."),
    click.option("--all", "follow", is_flag=True, help=f"Follow the pages (at most {MAX_LISTED:,})."),
)


def _list_options(f: Any) -> Any:
    for option in reversed(_LIST_OPTIONS):
        f = option(f)
    return f


@click.group(invoke_without_command=True)
@_list_options
@client_command
def schedules(opts: Options, limit: int | None, cursor: str | None, follow: bool) -> None:
    """List, show, create, pause, resume and delete schedules (periodic tasks).

    Without a subcommand: the list, oldest first (as `schedules list`)."""
    ctx = click.get_current_context()
    if ctx.invoked_subcommand is None:
        _list(opts, limit, cursor, follow)
        return
    given = [p.opts[0] for p in ctx.command.params if p.name and _from_user(ctx, p.name)]
    if given:  # they would be silently ignored: the subcommand has its own
        names = ", ".join(given)
        raise click.UsageError(f"put {names} after the subcommand: schedules {ctx.invoked_subcommand} ...")


def _from_user(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.PROMPT)


@schedules.command("list")
@_list_options
@client_command
def list_schedules(opts: Options, limit: int | None, cursor: str | None, follow: bool) -> None:
    """List schedules, oldest first.

    --json prints {"items": [...], "next_cursor": ...}; next_cursor is null at the end."""
    _list(opts, limit, cursor, follow)


@schedules.command()
@click.argument("schedule_id")
@client_command
def show(opts: Options, schedule_id: str) -> None:
    """Show a schedule: timing, next and last run, its task, its last tasks and their status.

    --json prints the schedule as the API answers it (`last_tasks`: the newest task ids)."""
    with Api(opts) as api:
        data = api.json("GET", f"{SCHEDULES}/{segment(schedule_id, 'schedule id')}")
        if opts.as_json:
            emit_json(data)
            return
        query = {"schedule_id": schedule_id, "limit": LAST_SHOWN}
        tasks = api.json("GET", "/api/v1/tasks", params=query)["items"]
    click.echo(schedule_detail(data, tasks))


@schedules.command()
@click.option("--every", help="A period: 30s, 5m, 1h (whole seconds, at least 1s).")
@click.option("--cron", help="Five fields (minute hour day month weekday) or @hourly, @daily ...")
@click.option("--timezone", help="IANA time zone the cron is read in (default UTC).")
@click.option(
    "--catch-up", type=click.Choice(["latest", "none", "all"]),
    help="After downtime: latest (the server's default), none, all (the newest 100).",
)  # fmt: skip
@click.option(
    "--overlap", type=click.Choice(["allow", "skip"]),
    help="While the previous task is unfinished: allow (the server's default: fire anyway), skip the tick.",
)  # fmt: skip
@click.option("--task", "task", help="The task, as the body of POST /api/v1/tasks (JSON); @file, @-.")
@click.option(
    "--file", "task_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the task's JSON from this file (instead of --task).",
)  # fmt: skip
@click.option("--id", "schedule_id", help="Your id: creating it again with the same task and timing is safe.")
@click.option("--paused", is_flag=True, help="Create it paused.")
@client_command
def create(
    opts: Options, every: str | None, cron: str | None, timezone: str | None, catch_up: str | None,
    overlap: str | None, task: str | None, task_file: Path | None, schedule_id: str | None, paused: bool,
) -> None:  # fmt: skip
    """Create a schedule: --every or --cron, and the task (--task or --file).

    e.g. create --every 1m --task '{"type": "echo", "payload": "ping"}'"""
    if (every is None) == (cron is None):
        raise click.UsageError("give one of --every and --cron")
    if (task is None) == (task_file is None):
        raise click.UsageError("give the task: --task '<json>' or --file PATH")
    body: dict[str, Any] = {
        "task": _json_arg(task if task is not None else f"@{task_file}", "--task" if task else "--file")
    }
    given = {"every": every, "cron": cron, "timezone": timezone, "catch_up": catch_up,
             "overlap": overlap, "id": schedule_id}  # fmt: skip
    body |= {k: v for k, v in given.items() if v is not None} | ({"paused": True} if paused else {})
    with Api(opts) as api:
        response = api.call("POST", SCHEDULES, body=body)
    data = response.json()
    if opts.as_json:
        emit_json(data)
        return
    verb = "created" if response.status_code == 201 else "already exists with this task and timing:"
    next_run = render.when(data.get("next_run_at"))
    click.echo(f"{verb} schedule {data['id']} ({timing_text(data)}), next run {next_run or '-'} UTC")


def _set_paused(opts: Options, schedule_id: str, paused: bool) -> None:
    with Api(opts) as api:
        path = f"{SCHEDULES}/{segment(schedule_id, 'schedule id')}"
        data = api.json("PATCH", path, body={"paused": paused})
    if opts.as_json:
        emit_json(data)
    elif paused:
        click.echo(f"schedule {data['id']}: paused (no task until resumed)")
    else:
        click.echo(f"schedule {data['id']}: resumed, next run {render.when(data.get('next_run_at'))} UTC")


@schedules.command()
@click.argument("schedule_id")
@client_command
def pause(opts: Options, schedule_id: str) -> None:
    """Pause a schedule: no task is created until it is resumed."""
    _set_paused(opts, schedule_id, True)


@schedules.command()
@click.argument("schedule_id")
@client_command
def resume(opts: Options, schedule_id: str) -> None:
    """Resume a schedule from its next tick after now (the ticks paused through do not fire)."""
    _set_paused(opts, schedule_id, False)


@schedules.command()
@click.argument("schedule_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@client_command
def delete(opts: Options, schedule_id: str, yes: bool) -> None:
    """Delete a schedule (asks first). Its tasks already created stay."""
    if not yes:
        confirm(f"Delete schedule {schedule_id}?")
    with Api(opts) as api:
        api.call("DELETE", f"{SCHEDULES}/{segment(schedule_id, 'schedule id')}")
    if opts.as_json:
        emit_json({"id": schedule_id, "deleted": True})
    else:
        click.echo(f"deleted schedule {schedule_id}")


COMMANDS: list[click.Command] = [schedules]
