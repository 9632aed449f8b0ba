"""`make soak` only: minutes of real processes under faults, so `make test` skips these tests."""

from __future__ import annotations

from tests.support.gate import Gate

GATE = Gate("QS_SOAK", "soak", "a long run under faults (`make soak`)", "soak: run by `make soak`")
pytest_configure = GATE.configure
pytest_collection_modifyitems = GATE.collection_modifyitems
