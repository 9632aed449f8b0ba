"""Test folders that only a make target runs (`make soak`, `make fuzz`, ...): their marker, and the
skip `make test` puts on every test that carries it unless the target's variable is set.

A folder's conftest.py binds the two hooks of one `Gate`:

    GATE = Gate("QS_SOAK", "soak", "a long run under faults (`make soak`)", "soak: run by `make soak`")
    pytest_configure = GATE.configure
    pytest_collection_modifyitems = GATE.collection_modifyitems
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest


@dataclass(frozen=True, slots=True)
class Gate:
    env: str  # the variable (set to 1) under which the marked tests run
    marker: str
    description: str | None  # registered with the marker; None where pyproject.toml declares it
    reason: str  # shown for each skipped test

    @property
    def enabled(self) -> bool:
        return os.environ.get(self.env) == "1"

    def configure(self, config: pytest.Config) -> None:
        if self.description is not None:
            config.addinivalue_line("markers", f"{self.marker}: {self.description}")

    def collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        if self.enabled:
            return
        skip = pytest.mark.skip(reason=self.reason)
        for item in items:
            if item.get_closest_marker(self.marker):
                item.add_marker(skip)
