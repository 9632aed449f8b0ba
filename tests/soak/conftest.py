"""`make soak` only: minutes of real processes under faults, so `make test` skips these tests."""

from __future__ import annotations

import os

import pytest

ENABLED = os.environ.get("QS_SOAK") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: a long run under faults (`make soak`)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="soak: run by `make soak`")
    for item in items:
        if item.get_closest_marker("soak"):
            item.add_marker(skip)
