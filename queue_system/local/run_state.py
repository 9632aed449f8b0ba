"""Where a running `make run` (`queue-system run`) serves its API, for the clients on this machine:
`{DATA_DIR}/run.json`, written once the API answers and removed when it stops. So
`API_PORT=8100 make run`, then `queue-system tasks list` in another terminal of the same
directory, finds port 8100 with no variable set (cli/http.py; QUEUE_SYSTEM_URL, --url, API_HOST and
API_PORT still come first).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

FILE = "run.json"


@dataclass(frozen=True, slots=True)
class RunState:
    api_url: str
    pid: int
    path: Path


def write(data_dir: Path, api_url: str) -> Path:
    path = data_dir / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"api_url": api_url, "pid": os.getpid()}) + "\n")
    return path


def read(data_dir: Path) -> RunState | None:
    """The state a live `make run` left; None when there is none, it is unreadable, or its process
    is gone (a run killed with SIGKILL leaves the file behind)."""
    path = data_dir / FILE
    try:
        data = json.loads(path.read_text())
        url, pid = str(data["api_url"]), int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return RunState(url, pid, path)


def remove(data_dir: Path) -> None:
    (data_dir / FILE).unlink(missing_ok=True)
