"""`make docker-test` only: these tests build images and run containers, so `make test` skips them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.docker.support import Receiver, bridge_gateway

ENABLED = os.environ.get("QS_DOCKER_TEST") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: builds the images and runs them with Docker Compose")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="containers: run by `make docker-test`")
    for item in items:
        if item.get_closest_marker("docker"):
            item.add_marker(skip)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """The receiver on the Docker bridge's gateway, one per test module (each runs its own stack)."""
    rx = Receiver(bridge_gateway())
    yield rx
    rx.close()
