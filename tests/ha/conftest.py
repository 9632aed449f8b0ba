"""`make test-ha` only: a failover under load takes minutes, so `make test` skips these tests."""

from __future__ import annotations

from tests.support.gate import Gate

GATE = Gate("QS_HA", "ha", "a Redis failover under load (`make test-ha`)", "ha: run by `make test-ha`")
pytest_configure = GATE.configure
pytest_collection_modifyitems = GATE.collection_modifyitems
