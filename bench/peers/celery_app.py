"""Celery: `celery -A bench.peers.celery_app worker --pool prefork` (Redis broker, Redis results).

Results are stored (a key per task in a second Redis db), as the product stores each task's
outcome; the harness counts them to know how many tasks are done.
"""

from __future__ import annotations

import os

from celery import Celery

app = Celery(
    "bench",
    broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
    backend=os.environ.get("BENCH_RESULT_URL", "redis://127.0.0.1:6379/1"),
)
app.conf.update(
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    task_ignore_result=False,
)


@app.task(name="noop")
def noop() -> None:
    return None
