"""Shared start-up for the entry points: read settings once, stop with a clear message if bad."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Run by path (`python cmd/api.py`): make the repository importable without installing.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from queue_system.errors import ConfigError  # noqa: E402
from queue_system.settings import Settings, load_settings  # noqa: E402


def settings_or_exit(*, need_redis: bool = True) -> Settings:
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        raise SystemExit(2) from None
    if need_redis and not settings.redis_url:
        sys.stderr.write(
            "configuration error: REDIS_URL (or REDIS_ADDR) is not set; "
            "`make run` starts an embedded Redis for you\n"
        )
        raise SystemExit(2)
    return settings
