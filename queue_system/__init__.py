"""queue_system: a task queue service for work you must not lose (above all, outbound webhooks)."""

__version__ = "0.1.0"
