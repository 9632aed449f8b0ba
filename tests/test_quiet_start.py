"""A healthy start reads as one: the development mailbox's own SMTP self-probe (aiosmtpd logs every
connection, "Connection lost" included) and uvicorn's and dramatiq's boot narration are DEBUG lines,
shown with LOG_LEVEL=DEBUG and not otherwise; uvicorn's general logger is not called `error`."""

from __future__ import annotations

import io
import logging
import re

import pytest

from queue_system.local.mailbox import DevMailbox
from queue_system.logging import configure_logging


@pytest.mark.parametrize(("level", "shown"), [("INFO", False), ("DEBUG", True)])
def test_the_mailbox_self_probe_is_debug(redis_url: str, level: str, shown: bool) -> None:
    out = io.StringIO()
    configure_logging(production=False, level=level, process="run", stream=out)
    try:
        sink = DevMailbox(redis_url)
        sink.start()  # aiosmtpd connects to itself to check it listens
        sink.stop()
    finally:
        configure_logging(production=False, level="INFO", process="test")
    assert ("Connection lost" in out.getvalue()) is shown, out.getvalue()


def test_uvicorn_and_dramatiq_boot_lines_are_debug_and_uvicorn_is_not_called_error() -> None:
    out = io.StringIO()
    configure_logging(production=False, level="INFO", process="api", stream=out)
    try:
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
        logging.getLogger("dramatiq.MainProcess").info("Dramatiq '2.2.1' is booting up.")
        logging.getLogger("uvicorn.error").info("Uvicorn running on %s (Press CTRL+C to quit)", "http://x:1")
        logging.getLogger("uvicorn.error").warning("something real")
    finally:
        configure_logging(production=False, level="INFO", process="test")
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
    assert "Started server process" not in text and "booting up" not in text
    assert "uvicorn: Uvicorn running on http://x:1\n" in text
    assert "uvicorn: something real" in text and "uvicorn.error" not in text
