"""RQ: `rq worker --worker-class rq.worker.SimpleWorker` (no fork per job) runs `noop`."""

from __future__ import annotations


def noop() -> None:
    return None
