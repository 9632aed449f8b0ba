"""`make test-ha` only: a failover under load takes minutes, so `make test` skips these tests."""

from __future__ import annotations

import os

import pytest

ENABLED = os.environ.get("QS_HA") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ha: a Redis failover under load (`make test-ha`)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="ha: run by `make test-ha`")
    for item in items:
        if item.get_closest_marker("ha"):
            item.add_marker(skip)
