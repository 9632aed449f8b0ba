"""Logging: loguru everywhere; JSON lines in production, colour in development.

Stdlib loggers (dramatiq, uvicorn, httpx) are routed through loguru by one intercepting handler.
Worker log lines carry `worker_id`, and `task_id`/`attempt` while a task runs (bound with
`logger.contextualize` by the runner).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, TextIO

from loguru import logger

if TYPE_CHECKING:
    from loguru import Record

_DEV_FORMAT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> <cyan>{extra[process]}</cyan> "
    "{message}<dim>{extra[context]}</dim>"
)


class _InterceptHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, "{}: {}", record.name, record.getMessage())


def _context(record: Record) -> bool:
    extra = record["extra"]
    shown = {k: v for k, v in extra.items() if k not in ("process", "context")}
    extra["context"] = "".join(f" {k}={v}" for k, v in shown.items())
    return True


def configure_logging(
    *, production: bool, level: str, process: str, stream: TextIO | None = None, **bound: str
) -> None:
    """Install the one loguru sink for this process. `stream` defaults to the real stderr, so the
    dramatiq CLI's per-worker pipe (which costs throughput) is bypassed."""
    sink = stream or sys.__stderr__ or sys.stderr
    logger.remove()
    logger.configure(extra={"process": process, **bound})
    if production:
        logger.add(sink, level=level, serialize=True, backtrace=False, diagnose=False)
    else:
        logger.add(sink, level=level, format=_DEV_FORMAT, filter=_context, colorize=True, diagnose=False)
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.INFO, force=True)
    # One line per delivery at most: httpx logs every request at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq"):
        std = logging.getLogger(name)
        std.handlers = []
        std.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING if production else logging.INFO)
