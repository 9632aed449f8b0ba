"""The layout of a worker instance's own directory (one per master process; worker/launch.py
empties it at start and removes it at exit)."""

from __future__ import annotations

from pathlib import Path

DIR_VARIABLE = "QUEUE_SYSTEM_WORKER_DIR"  # the instance's directory, for its worker processes


def status_dir(instance: Path) -> Path:
    """Where each worker process writes its status (worker/health.py)."""
    return instance / "status"


def metrics_dir(instance: Path) -> Path:
    """prometheus_client's multiprocess directory (worker/metrics.py)."""
    return instance / "metrics"
