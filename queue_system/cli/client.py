"""`queue-system` client commands: they talk to the HTTP API, so they work against a remote deployment.

    queue-system tasks submit|list|show|retry|cancel|delete   (submit --file tasks.jsonl: in batches)
    queue-system tasks retry|cancel|delete --status failed --since 2h [--wait]   (cli/operations.py)
    queue-system operations [list | show ID | cancel ID]
    queue-system stats | workers | destinations   (cli/reports.py)
    queue-system purge --status failed --older-than 7d [--yes]

Every command takes `--url` (env `QUEUE_SYSTEM_URL`; default: the server's own API_HOST and API_PORT,
http://127.0.0.1:8080 unless set), `--api-key` (env
`QUEUE_SYSTEM_API_KEY`, sent as `Authorization: Bearer <key>`, never printed), `--timeout` (seconds per
request) and `--json`. Results go to stdout: aligned tables, or one JSON document with `--json` (the
API's own fields, so it stays as stable as the API); errors and notes go to stderr.

Exit codes, for scripts:
    0  ok
    1  the request failed or the API answered with an error (its RFC 9457 `detail` and `field` are shown)
    2  usage error: a bad option or argument (click's own code)
    3  not found (404): no such task, or an endpoint this server does not have (workers, destinations)
    4  conflict (409): e.g. cancelling a finished task, an `--id` reused with another body
    5  unauthorized or forbidden (401/403): a missing or refused API key
    6  the server is unreachable (connection refused, name not resolved, connect timeout)
    7  aborted by the user at a confirmation prompt (or no answer: stdin closed); nothing was deleted
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import click

from queue_system.cli import batch, reports
from queue_system.cli import operations as bulk
from queue_system.cli import render as render
from queue_system.cli.http import (
    Api,
    CliError,
    NotFound,
    Options,
    Unreachable,
    client_command,
    confirm,
    emit_json,
    segment,
)
from queue_system.domain.models import TaskStatus

MAX_LISTED = 10_000  # `tasks list --all` and `purge` stop here, so a huge backlog cannot run away
PAGE = 500  # the API's largest page
TASKS = "/api/v1/tasks"
STATUS = click.Choice([s.value for s in TaskStatus])


def _read_arg(text: str) -> str:
    """`@file` reads a file, `@-` stdin; anything else is the value itself."""
    if not text.startswith("@"):
        return text
    if text == "@-":
        return sys.stdin.read()
    try:
        return Path(text[1:]).read_text()
    except OSError as exc:
        raise click.BadParameter(f"cannot read {text[1:]}: {exc.strerror}") from exc


def _json_arg(text: str, name: str) -> Any:
    try:
        return json.loads(_read_arg(text))
    except json.JSONDecodeError as exc:
        raise click.BadParameter(
            f"not JSON ({exc.msg}); a string needs quotes: '\"Hello\"'", param_hint=name
        ) from exc


def fetch_tasks(
    api: Api, params: dict[str, Any], page: int, cursor: str | None, most: int
) -> tuple[list[Any], str | None]:
    """Pages of GET /api/v1/tasks from `cursor` until there are no more or `most` tasks were read.
    -> (tasks, the cursor to continue from or None)."""
    items: list[Any] = []
    while True:
        query = {**params, "limit": min(page, most - len(items))}
        if cursor:
            query["cursor"] = cursor
        answer = api.json("GET", TASKS, params=query)
        items += answer["items"]
        cursor = answer.get("next_cursor")
        if not cursor or len(items) >= most:
            return items, cursor


def _filters(statuses: tuple[str, ...], task_type: str | None, queue: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"status": list(statuses)} if statuses else {}
    if task_type:
        params["type"] = task_type
    if queue:
        params["queue"] = queue
    return params


# -- tasks ----------------------------------------------------------------------------------------


@click.group()
def tasks() -> None:
    """Submit, list, inspect, retry, cancel and delete tasks."""


@tasks.command()
@click.option("--type", "task_type", help="The task kind (echo, sum, email, your own ...).")
@click.option("--payload", help="The payload as JSON; @file reads a file, @- stdin.")
@click.option("--webhook", metavar="URL", help="Submit a webhook to this URL (instead of --type/--payload).")
@click.option("--method", help="The webhook's HTTP method (the server's default: POST).")
@click.option(
    "--header", "headers", multiple=True, metavar="NAME:VALUE", help="A webhook header; repeatable."
)
@click.option("--body", help="The webhook's body, sent as is; @file reads a file, @- stdin.")
@click.option("--id", "task_id", help="Your id: re-submitting the same id and body is safe.")
@click.option("--queue", help="default or priority.")
@click.option("--delay", help="Run later: 30s, 5m, 2h ...")
@click.option("--max-retries", type=click.IntRange(0, 100), help="Retries after the first attempt.")
@click.option(
    "--file", "tasks_file", type=click.File("r"),
    help="JSON Lines, one task body per line (`-`: stdin), sent in batches; exit 1 if any line failed.",
)  # fmt: skip
@click.option(
    "--batch-size", type=click.IntRange(1, 10_000), default=batch.DEFAULT_BATCH, show_default=True,
    help="Lines per request with --file (at most the server's TASK_BATCH_MAX).",
)  # fmt: skip
@client_command
def submit(opts: Options, tasks_file: TextIO | None, batch_size: int, **given: Any) -> None:
    """Submit a task, or a webhook, or a file of them.

    --type with --payload, or --webhook URL with --method, --header and --body, or --file
    tasks.jsonl (each line a body of POST /api/v1/tasks; one result line per line)."""
    if tasks_file is not None:
        if any(v for v in given.values()):
            raise click.UsageError("--file takes the tasks from the file: drop the other task options")
        batch.submit_file(opts, tasks_file, batch_size)
        return
    body = _submit_body(**given)
    with Api(opts) as api:
        response = api.call("POST", TASKS, body=body)
    task = response.json()
    if opts.as_json:
        emit_json(task)
        return
    verb = "submitted" if response.status_code == 201 else "already exists with this body:"
    click.echo(f"{verb} task {task['id']} ({task['type']}, {task['status']})")


def _submit_body(
    task_type: str | None, payload: str | None, webhook: str | None, method: str | None,
    headers: tuple[str, ...], body: str | None, task_id: str | None, queue: str | None,
    delay: str | None, max_retries: int | None,
) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any]
    if webhook:
        if task_type not in (None, "webhook") or payload is not None:
            raise click.UsageError("--webhook builds the payload itself: drop --type/--payload")
        hook: dict[str, Any] = {"url": webhook, "headers": dict(_header(h) for h in headers)}
        if method:
            hook["method"] = method.upper()
        if body is not None:
            hook["body"] = _read_arg(body)
        out = {"type": "webhook", "payload": hook}
    else:
        if method or headers or body is not None:
            raise click.UsageError("--method, --header and --body go with --webhook URL")
        if not task_type:
            raise click.UsageError("give --type (and --payload), or --webhook URL")
        out = {"type": task_type}
        if payload is not None:
            out["payload"] = _json_arg(payload, "--payload")
    extras = {"id": task_id, "queue": queue, "delay": delay, "max_retries": max_retries}
    return out | {k: v for k, v in extras.items() if v is not None}


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise click.BadParameter(f"{text!r} is not NAME:VALUE", param_hint="--header")
    return name.strip(), value.strip()


@tasks.command("list")
@click.option("--status", "statuses", multiple=True, type=STATUS, help="Only this status; repeatable.")
@click.option("--type", "task_type", help="Only tasks of this type.")
@click.option("--queue", help="Only tasks on this queue.")
@click.option("--limit", type=click.IntRange(1, PAGE), help="Tasks per page: 50, or 500 with --all.")
@click.option("--cursor", help="Continue from the `next_cursor` of a previous list.")
@click.option(
    "--all", "follow", is_flag=True, help=f"Follow the pages to the end (at most {MAX_LISTED:,} tasks)."
)
@client_command
def list_tasks(
    opts: Options, statuses: tuple[str, ...], task_type: str | None, queue: str | None,
    limit: int | None, cursor: str | None, follow: bool,
) -> None:  # fmt: skip
    """List tasks, newest first.

    --json prints {"items": [...], "next_cursor": ...}; next_cursor is null at the end."""
    page = limit or (PAGE if follow else 50)
    with Api(opts) as api:
        items, more = fetch_tasks(
            api, _filters(statuses, task_type, queue), page, cursor, MAX_LISTED if follow else page
        )
    if opts.as_json:
        emit_json({"items": items, "next_cursor": more})
        return
    click.echo(render.task_table(items) if items else "no tasks")
    if more:
        click.echo(f"more tasks: add --cursor {more}", err=True)


@tasks.command()
@click.argument("task_id")
@client_command
def show(opts: Options, task_id: str) -> None:
    """Show a task with its attempts as a timeline."""
    with Api(opts) as api:
        task = api.json("GET", f"{TASKS}/{segment(task_id, 'task id')}")
    if opts.as_json:
        emit_json(task)
    else:
        click.echo(render.task_detail(task))


def _act(opts: Options, task_id: str | None, action: str, given: dict[str, Any]) -> None:
    """One task by id, or (filters instead of an id) a bulk operation: cli/operations.py."""
    body = bulk.bulk_body(given)
    if (task_id is None) == (body is None):
        raise click.UsageError("give a task id, or filters (--status, --since, ... or --all), not both")
    if body is not None:
        bulk.start(
            opts, action, body, bool(given.get("wait")), ask=action == "delete" and not given.get("yes")
        )
        return
    assert task_id is not None  # no filters: an id (checked above)
    path = f"{TASKS}/{segment(task_id, 'task id')}"
    with Api(opts) as api:
        if action == "delete":
            if not given.get("yes"):
                confirm(f"Delete task {task_id}?")
            api.call("DELETE", path)
            emit_json({"id": task_id, "deleted": True}) if opts.as_json else click.echo(
                f"deleted task {task_id}"
            )
            return
        task = api.json("POST", f"{path}/{action}")
    if opts.as_json:
        emit_json(task)
    else:
        click.echo(f"task {task['id']}: {task['status']}")


@tasks.command()
@click.argument("task_id", required=False)
@bulk.bulk_options
@client_command
def retry(opts: Options, task_id: str | None, **given: Any) -> None:
    """Run a failed or cancelled task again now; with filters instead of an id, every matching one
    (a bulk operation: --wait shows its progress).

    One task in another status is a conflict: exit 4."""
    _act(opts, task_id, "retry", given)


@tasks.command()
@click.argument("task_id", required=False)
@bulk.bulk_options
@client_command
def cancel(opts: Options, task_id: str | None, **given: Any) -> None:
    """Cancel a pending, scheduled or retrying task; with filters instead of an id, every matching
    one (a bulk operation).

    One task in another status is a conflict: exit 4."""
    _act(opts, task_id, "cancel", given)


@tasks.command()
@click.argument("task_id", required=False)
@bulk.bulk_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@client_command
def delete(opts: Options, task_id: str | None, **given: Any) -> None:
    """Delete a task (asks first); with filters instead of an id, every matching one (a bulk
    operation, asks first).

    A task that could still run is cancelled first, so it never runs again."""
    _act(opts, task_id, "delete", given)


class Duration(click.ParamType[timedelta]):
    """`7d`, `12h`, `30m`, `45s`, `2w` or a number of seconds."""

    name = "duration"
    _UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip().lower()
        number, unit = (text[:-1], text[-1]) if text[-1:] in self._UNITS else (text, "s")
        try:
            seconds = float(number) * self._UNITS[unit]
        except ValueError:
            self.fail(f"{value!r} is not a duration like 7d, 12h, 30m, 45s", param, ctx)
        if not 0 <= seconds <= 100 * 365 * 86400:
            self.fail(f"{value!r} is out of range", param, ctx)
        return timedelta(seconds=seconds)


@click.command()
@click.option("--status", "statuses", multiple=True, required=True, type=STATUS, help="Repeatable.")
@click.option(
    "--older-than", type=Duration(), required=True, help="Created before now minus this: 7d, 12h ..."
)
@click.option("--type", "task_type", help="Only tasks of this type.")
@click.option("--queue", help="Only tasks on this queue.")
@click.option("--max", "most", type=click.IntRange(1, MAX_LISTED), default=MAX_LISTED, show_default=True,
              help="Delete at most this many in one run.")  # fmt: skip
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@client_command
def purge(
    opts: Options, statuses: tuple[str, ...], older_than: timedelta, task_type: str | None,
    queue: str | None, most: int, yes: bool,
) -> None:  # fmt: skip
    """Delete old tasks of some status (asks first).

    purge --status failed --older-than 7d: lists the matching tasks, says how many, asks (unless
    --yes), deletes each, and reports the counts; exit 1 if any deletion failed."""
    before = render.rfc3339(datetime.now(UTC) - older_than)
    params = _filters(statuses, task_type, queue) | {"created_before": before}
    with Api(opts) as api:
        found, more = fetch_tasks(api, params, PAGE, None, most)
        ids = [str(t["id"]) for t in found]
        more_note = " (and more: run again for the rest)" if more else ""
        click.echo(
            f"{len(ids)} task(s){more_note} with status {'/'.join(statuses)} created before {before}",
            err=True,
        )
        if ids and not yes:
            confirm(f"Delete {len(ids)} task(s)?")
        outcome = _delete_each(api, ids)
    failed = outcome["failed"]
    if opts.as_json:
        emit_json({"created_before": before, "matched": len(ids), "more": more is not None, **outcome})
    else:
        click.echo(
            f"deleted {outcome['deleted']}, already gone {outcome['already_gone']}, failed {len(failed)}"
        )
        for item in failed:
            click.echo(f"  {item['id']}: {item['error']}", err=True)
    if failed:
        raise CliError(f"{len(failed)} of {len(ids)} deletions failed")


def _delete_each(api: Api, ids: list[str]) -> dict[str, Any]:
    deleted, gone, failed = 0, 0, []
    for task_id in ids:
        try:
            api.call("DELETE", f"{TASKS}/{segment(task_id, 'task id')}")
            deleted += 1
        except Unreachable as exc:  # no point trying the rest: say how far it got
            raise Unreachable(f"{exc.message} (after deleting {deleted} of {len(ids)})") from exc
        except NotFound:  # deleted meanwhile, or purged by retention
            gone += 1
        except CliError as exc:
            failed.append({"id": task_id, "error": exc.message})
    return {"deleted": deleted, "already_gone": gone, "failed": failed}


COMMANDS: list[click.Command] = [tasks, *reports.COMMANDS, purge, bulk.operations]

if __name__ == "__main__":  # `python -m queue_system.cli.client ...` until the main group adds these
    click.Group("queue-system", commands=COMMANDS)()
