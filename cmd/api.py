"""The API process: `python cmd/api.py` (make run-api). Needs REDIS_URL."""

from __future__ import annotations

import _common
import uvicorn

from queue_system.api.app import create_app
from queue_system.logging import configure_logging


def main() -> None:
    settings = _common.settings_or_exit()
    configure_logging(production=settings.production, level=settings.log_level, process="api")
    uvicorn.run(
        create_app(settings),
        host=settings.api.host,
        port=settings.api.port,
        log_config=None,
        access_log=not settings.production,
        timeout_graceful_shutdown=settings.api.graceful_timeout_s,
        server_header=False,
    )


if __name__ == "__main__":
    main()
