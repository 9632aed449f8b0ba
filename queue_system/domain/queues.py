"""The queues a task may name (product vocabulary: `queue` in a submission, the dashboard's filter,
the worker's `--queues`). Each is one Dramatiq queue with one actor (storage/dramatiq_wire.py);
Dramatiq orders a worker's work by actor priority."""

from __future__ import annotations

QUEUES = ("default", "priority")
