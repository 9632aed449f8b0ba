"""Reading the curl examples of the README and the docs as requests."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def as_request(argv: list[str]) -> tuple[str, str, dict[str, str], str | None]:
    method, headers, data, url = "GET", {}, None, ""
    args = iter(argv[1:])
    for arg in args:
        if arg == "-X":
            method = next(args)
        elif arg == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-d":
            data = next(args)
            method = "POST" if method == "GET" else method
        elif arg.startswith("http"):
            url = arg
        else:
            raise AssertionError(f"unsupported curl argument {arg!r}")
    return method, url.replace("http://localhost:8080", ""), headers, data


def first_minute() -> tuple[list[str], list[str]]:
    """The README's first example: (its curl command without `-i`, its `queue-system` command).
    tests/e2e/test_front_door_e2e.py walks it on a real `make run`."""
    match = re.search(r"<!-- examples:first-minute -->\s*```sh\n(.*?)```", README.read_text(), re.S)
    assert match, "README has no examples:first-minute block"
    commands = [shlex.split(line) for line in match.group(1).replace("\\\n", " ").splitlines() if line]
    [curl] = [c for c in commands if c[0] == "curl"]
    [cli] = [c for c in commands if c[0] == "queue-system"]
    return [a for a in curl if a != "-i"], cli
