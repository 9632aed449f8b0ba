"""The Dramatiq worker: `dramatiq queue_system.worker.app` (see cmd/worker.py)."""
