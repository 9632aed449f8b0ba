"""Running the CLI in-process."""

from __future__ import annotations

import click
from click.testing import CliRunner, Result

from queue_system.cli import dev as cli_dev
from queue_system.cli.client import COMMANDS

MAIN = click.Group(
    "queue-system", commands=COMMANDS + cli_dev.COMMANDS
)  # as `queue_system.cli.main` adds them


def invoke(*args: str, input: str | None = None, env: dict[str, str | None] | None = None) -> Result:
    # No QUEUE_SYSTEM_* from the developer's shell: each test says what it means.
    base: dict[str, str | None] = {"QUEUE_SYSTEM_URL": None, "QUEUE_SYSTEM_API_KEY": None}
    runner = CliRunner(env=base | (env or {}))
    return runner.invoke(MAIN, list(args), input=input, catch_exceptions=False)
