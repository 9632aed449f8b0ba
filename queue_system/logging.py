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


# Start-up chatter of our libraries, at DEBUG: a healthy start prints one line per component (our
# own), and nothing that reads like an error. aiosmtpd logs every connection, the mailbox's own
# self-probe at start included ("Connection lost"); uvicorn and dramatiq narrate their boot.
_CHATTY = frozenset({"mail.log"})
_CHATTER = (
    "Started server process",
    "Waiting for application startup",
    "Application startup complete",
    "Waiting for application shutdown",
    "Application shutdown complete",
    "Finished server process",
    "is booting up",
    "Worker process is ready for action",
)
# uvicorn's general logger is named `uvicorn.error`: shown as `uvicorn`, since it is not one.
_SHOWN_NAME = {"uvicorn.error": "uvicorn"}


def _level(record: logging.LogRecord, message: str) -> str | int:
    if record.levelno == logging.INFO and (
        record.name in _CHATTY or any(text in message for text in _CHATTER)
    ):
        return "DEBUG"
    try:
        return logger.level(record.levelname).name
    except ValueError:
        return record.levelno


class _InterceptHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().removesuffix(" (Press CTRL+C to quit)")
        name = _SHOWN_NAME.get(record.name, record.name)
        logger.opt(depth=6, exception=record.exc_info).log(_level(record, message), "{}: {}", name, message)


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
