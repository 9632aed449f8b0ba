"""`make fuzz` only: Schemathesis drives a real API process for minutes, so `make test` skips it."""

from __future__ import annotations

import os

import pytest

ENABLED = os.environ.get("QS_FUZZ") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: Schemathesis against a running API (make fuzz)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="fuzzing: run by `make fuzz`")
    for item in items:
        if item.get_closest_marker("fuzz"):
            item.add_marker(skip)
