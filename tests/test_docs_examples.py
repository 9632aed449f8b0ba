"""Every shell example of the docs site (docs/**/*.md) and of README.md, run as a user would type it,
page by page, against a real API and worker (real processes, real Redis, the dev inbox on, the
docs' own `myapp.tasks` kind module loaded):

- `curl ...` is sent to the running API (or the worker's health port) and must answer 2xx;
- `queue-system ...` runs the CLI against it and must exit 0 (`run`, `api`, `worker` would start a
  service: they must exist, and are not started here);
- `python3 -c ...` runs (in the background with a trailing `&`, like the docs' receiver);
- `make TARGET` must name a target of the Makefile, and `VAR=value` before a command a setting;
- `docker compose ...` must name services that docker-compose.yml has.

A command that none of these knows fails the test, so a new kind of example needs a runner here.
The docs' fixed addresses (localhost:8080, 127.0.0.1:9000, localhost:8082) become this run's free
ports. The parsing is tests/test_readme_examples.py's, extended.
"""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from click.testing import CliRunner

from queue_system.cli.main import main
from queue_system.config.settings import SPEC
from tests.e2e import support
from tests.support.examples import as_request

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SERVICES = ("run", "api", "worker")  # they start a service: checked, not run


def pages() -> list[Path]:
    """README.md and every page of the site that has a shell example."""
    found = [ROOT / "README.md", *sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.parts)]
    return [p for p in found if "```sh\n" in p.read_text()]


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)


def commands(block: str) -> list[list[str]]:
    """The block's commands as argv lists: continuations and multi-line quotes joined, comments
    dropped."""
    found: list[list[str]] = []
    pending = ""
    for line in block.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        try:
            argv = shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on
            continue
        if argv:
            found.append(argv)
        pending = ""
    assert not pending, f"an unterminated command: {pending!r}"
    return found


def python_example(page: Path, heading: str) -> str:
    match = re.search(rf"{re.escape(heading)}.*?```python\n(.*?)```", page.read_text(), re.S)
    assert match, f"{page.name} has no python example under {heading!r}"
    return match.group(1)


@dataclass
class World:
    """The running system the examples talk to, and the docs' addresses mapped onto it."""

    api_url: str
    health_url: str
    receiver_port: int
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # A page's placeholder for an id the API gave earlier on that page (the reader copies it from
    # the answer): SCHEDULE_ID is the id of the schedule the page created last, OPERATION_ID of
    # the bulk operation it started last.
    ids: dict[str, str] = field(default_factory=dict)

    def local(self, text: str) -> str:
        for placeholder, value in self.ids.items():
            text = text.replace(placeholder, value)
        for docs_address, ours in (
            ("http://localhost:8080", self.api_url),
            ("http://127.0.0.1:8080", self.api_url),
            ("localhost:8080", self.api_url),
            ("127.0.0.1:8080", self.api_url.removeprefix("http://")),
            ("localhost:8082", self.health_url),
            ("127.0.0.1:9000", f"127.0.0.1:{self.receiver_port}"),
            ('"127.0.0.1", 9000)', f'"127.0.0.1", {self.receiver_port})'),
        ):
            text = text.replace(docs_address, ours)
        return text


@pytest.fixture(scope="module")
def world(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    code = tmp_path_factory.mktemp("myapp-code")
    (code / "myapp").mkdir()
    (code / "myapp" / "__init__.py").write_text("")
    (code / "myapp" / "tasks.py").write_text(python_example(DOCS / "task-kinds.md", "## Your own task kinds"))
    health_port = support.free_port()
    env = {
        "DEV_INBOX": "true",  # as `make run` has it in development, with its mailbox's recipient:
        "EMAIL_DEFAULT_TO": "dev@localhost",
        "TASK_MODULES": "myapp.tasks",
        "PYTHONPATH": str(code),
        "WORKER_HEALTH_PORT": str(health_port),
    }
    with support.stack(redis_url, tmp_path_factory.mktemp("docs-logs"), **env) as running:
        yield World(running.base_url, f"http://127.0.0.1:{health_port}", support.free_port())


def run_curl(world: World, argv: list[str]) -> None:
    args = [a for a in argv if a not in ("-i", "-s")]
    method, url, headers, data = as_request([world.local(a) for a in args])
    if not url.startswith("http"):
        url = world.api_url + url if url.startswith("/") else f"http://{url}"
    answers: list[httpx.Response] = []

    def healthy() -> bool:
        answers.append(httpx.request(method, url, headers=headers, content=data, timeout=15))
        return 200 <= answers[-1].status_code < 300

    # The worker's health needs a fresh Dramatiq heartbeat, which the page's empty Redis gets
    # within a second: that one is polled (bounded); everything else is asked once.
    patience = 10.0 if url.startswith(world.health_url) else 0.0
    assert healthy() or support.poll(healthy, timeout=patience), (
        argv,
        answers[-1].status_code,
        answers[-1].text,
    )
    if method == "POST" and url.endswith("/api/v1/schedules"):
        world.ids["SCHEDULE_ID"] = answers[-1].json()["id"]
    if method == "POST" and "/api/v1/tasks/actions/" in url:  # OPERATION_ID: the bulk operation's
        world.ids["OPERATION_ID"] = answers[-1].json()["id"]


def run_cli(world: World, argv: list[str]) -> None:
    if argv[1] in SERVICES:
        assert argv[1] in main.commands
        return
    env = {"QUEUE_SYSTEM_URL": world.api_url, "QUEUE_SYSTEM_API_KEY": None}
    result = CliRunner(env=env).invoke(main, [world.local(a) for a in argv[1:]], catch_exceptions=False)
    assert result.exit_code == 0, (argv, result.output)


def run_python(world: World, argv: list[str]) -> None:
    assert argv[1] == "-c", argv
    background = argv[-1] == "&"
    command = [sys.executable, "-c", world.local(argv[2]), *argv[3:]]
    if not background:
        subprocess.run(command, check=True, timeout=30, capture_output=True)
        return
    proc = subprocess.Popen(command[:-1], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    world.background.append(proc)

    def listening() -> bool:
        assert proc.poll() is None, f"{argv[:3]} exited with {proc.returncode}"
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", world.receiver_port)) == 0

    assert support.poll(listening, timeout=10), argv


def check_make(argv: list[str]) -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in argv[1:]:
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"no make target {target}"


def check_compose(argv: list[str]) -> None:
    assert argv[1] == "compose", argv
    compose = (ROOT / "docker-compose.yml").read_text()
    for arg in argv[2:]:
        if "=" in arg and not arg.startswith("-"):
            service = arg.split("=", 1)[0]
            assert re.search(rf"^  {re.escape(service)}:", compose, re.M), f"no compose service {service}"


def run(world: World, argv: list[str]) -> None:
    settings = {var.name for var in SPEC}
    while argv and re.fullmatch(r"[A-Z_]+=\S*", argv[0]):
        assert argv[0].split("=", 1)[0] in settings, f"{argv[0]}: not a setting"
        argv = argv[1:]
    runners = {
        "curl": lambda: run_curl(world, argv),
        "queue-system": lambda: run_cli(world, argv),
        "python3": lambda: run_python(world, argv),
        "python": lambda: run_python(world, argv),
        "make": lambda: check_make(argv),
        "docker": lambda: check_compose(argv),
    }
    assert argv[0] in runners, f"no runner for a {argv[0]!r} example: add one to {Path(__file__).name}"
    runners[argv[0]]()


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shell_example_of_the_page_works(page: Path, world: World, redis_client: redis.Redis) -> None:
    """`redis_client` empties Redis first: each page starts from a fresh system, as a reader would."""
    ran = 0
    try:
        for block in sh_blocks(page.read_text()):
            for argv in commands(block):
                run(world, argv)
                ran += 1
    finally:  # the page's background receivers end with it
        for proc in world.background:
            proc.terminate()
            proc.wait(timeout=10)
        world.background.clear()
        world.ids.clear()
    assert ran, f"{page.name}: no commands found in its sh blocks"


def test_the_parser_keeps_multi_line_commands_whole() -> None:
    block = "curl -X POST x \\\n  -d '{}'\npython3 -c 'a\nb' &\nmake run   # a comment\n"
    assert commands(block) == [
        ["curl", "-X", "POST", "x", "-d", "{}"],
        ["python3", "-c", "a\nb", "&"],
        ["make", "run"],
    ]


def test_every_page_with_examples_is_covered() -> None:
    names = {str(p.relative_to(ROOT)) for p in pages()}
    assert {
        "README.md",
        "docs/getting-started.md",
        "docs/cli.md",
        "docs/api.md",
        "docs/task-kinds.md",
    } <= names
