"""Dashboard tests. The `browser` ones drive a real Chromium and run only under `make test-browser`
(QS_BROWSER_TEST=1): `make test` skips them."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("QS_BROWSER_TEST") == "1":
        return
    skip = pytest.mark.skip(reason="browser test: run with `make test-browser`")
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(skip)
