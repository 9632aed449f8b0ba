"""No-op tasks for the peer systems (Celery, RQ, arq), each run with its own worker CLI."""
