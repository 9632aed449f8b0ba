"""Everything in one command (`make run`): Redis (embedded when REDIS_URL is unset), API, worker.

Ctrl-C (or SIGTERM) stops the worker and the API gracefully, then Redis (saving its data).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

import _common
from loguru import logger

from queue_system.embedded import EmbeddedRedis
from queue_system.logging import configure_logging

HERE = _common.ROOT / "cmd"


def main() -> int:
    settings = _common.settings_or_exit(need_redis=False)
    configure_logging(production=settings.production, level=settings.log_level, process="run")
    embedded: EmbeddedRedis | None = None
    url = settings.redis_url
    if url is None:
        embedded = EmbeddedRedis(settings.data_dir / "redis")
        url = embedded.start()
        logger.info("embedded Redis ready: REDIS_URL={} (data in {})", url, embedded.data_dir)
    env = {**os.environ, "REDIS_URL": url}
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # Own sessions: a terminal's Ctrl-C reaches only us, and we stop the children in order.
    children = {
        name: subprocess.Popen([sys.executable, str(HERE / f"{name}.py")], env=env, start_new_session=True)
        for name in ("worker", "api")
    }
    logger.info("API on http://{}:{} (docs at /schema), worker started; Ctrl-C stops all",
                settings.api.host, settings.api.port)
    code = 0
    while not stopping:
        for name, child in children.items():
            if child.poll() is not None:
                logger.error("{} exited with code {}; stopping everything", name, child.returncode)
                stopping, code = True, 1
        time.sleep(0.2)
    logger.info("stopping: worker and API finish what they are doing")
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + settings.worker.request_timeout_ms / 1000 + 15
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    if embedded is not None:
        embedded.stop()
        logger.info("embedded Redis stopped (data kept in {})", embedded.data_dir)
    return code


if __name__ == "__main__":
    sys.exit(main())
