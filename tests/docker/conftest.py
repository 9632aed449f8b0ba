"""`make docker-test` only: these tests build images and run containers, so `make test` skips them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.docker.support import Receiver, bridge_gateway
from tests.support.gate import Gate

GATE = Gate(
    "QS_DOCKER_TEST",
    "docker",
    "builds the images and runs them with Docker Compose",
    "containers: run by `make docker-test`",
)
pytest_configure = GATE.configure
pytest_collection_modifyitems = GATE.collection_modifyitems


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """The receiver on the Docker bridge's gateway, one per test module (each runs its own stack)."""
    rx = Receiver(bridge_gateway())
    yield rx
    rx.close()
