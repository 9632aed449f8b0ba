"""Dashboard tests. The `browser` ones drive a real Chromium and run only under `make test-browser`
(QS_BROWSER_TEST=1): `make test` skips them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from litestar.testing import TestClient

from queue_system.api.keys import KeyRing
from tests.support.dashboard import READ_KEY, WRITE_KEY, make_client
from tests.support.gate import Gate

# The marker is declared in pyproject.toml (the browser tests' own module needs it without this file).
GATE = Gate("QS_BROWSER_TEST", "browser", None, "browser test: run with `make test-browser`")
pytest_collection_modifyitems = GATE.collection_modifyitems


@pytest.fixture
def open_client(redis_client: redis.Redis, redis_url: str) -> Iterator[TestClient[Any]]:
    """The dashboard with no keys configured (open mode, as `make run` has it)."""
    with make_client(redis_url, None) as client:
        yield client


@pytest.fixture
def keyed(redis_client: redis.Redis, redis_url: str) -> Iterator[TestClient[Any]]:
    """The dashboard behind a write key and a read-only key (sign in with `sign_in`)."""
    ring = KeyRing.from_settings(api_keys=WRITE_KEY, read_keys=READ_KEY)
    with make_client(redis_url, ring) as client:
        yield client
