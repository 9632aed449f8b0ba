"""Container health checks (the images' HEALTHCHECK): `healthcheck.py api` or `healthcheck.py worker`.

Exit 0 when healthy, 1 otherwise, with one line saying why; only the standard library, so the
images need no curl. Each service's check is one function: swap a body to change what it means.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path


def api() -> str | None:
    """The API answers GET /health with 200."""
    port = os.environ.get("API_PORT") or "8080"
    return http_ok(f"http://127.0.0.1:{port}/health")


def worker() -> str | None:
    """The worker's master answers GET /health with 200: every worker process reports, its
    consumers are alive and polling, and Redis answers (503 with the reasons otherwise)."""
    port = os.environ.get("WORKER_HEALTH_PORT") or "8082"
    if port == "0":  # not served: fall back to the processes being there
        return processes_alive()
    return http_ok(f"http://127.0.0.1:{port}/health")


def processes_alive() -> str | None:
    """The Dramatiq master and at least one of its worker processes are alive."""
    commands = [cmdline(p) for p in Path("/proc").iterdir() if p.name.isdigit()]
    # `queue-system worker`: the master, and its forked worker processes share its command line.
    workers = [c for c in commands if c.split()[-1:] == ["worker"] and "bin/queue-system" in c]
    if len(workers) < 2:
        return f"{len(workers)} worker process(es) running; want the master and a worker"
    return None


def http_ok(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - a fixed http URL
            return None if response.status == 200 else f"{url} answered {response.status}"
    except urllib.error.HTTPError as exc:  # a 503 says why in its body
        return f"{url} answered {exc.code}: {exc.read(500).decode(errors='replace')}"
    except OSError as exc:
        return f"{url}: {exc}"


def cmdline(proc: Path) -> str:
    try:
        # A zombie has an empty command line, so a dead worker process is not counted.
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


CHECKS = {"api": api, "worker": worker}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in CHECKS:
        print(f"usage: healthcheck.py {{{','.join(CHECKS)}}}", file=sys.stderr)
        return 2
    problem = CHECKS[argv[1]]()
    if problem:
        print(f"unhealthy: {problem}")
        return 1
    print("healthy")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
