"""`make fuzz` only: Schemathesis drives a real API process for minutes, so `make test` skips it."""

from __future__ import annotations

from tests.support.gate import Gate

GATE = Gate(
    "QS_FUZZ", "fuzz", "Schemathesis against a running API (make fuzz)", "fuzzing: run by `make fuzz`"
)
pytest_configure = GATE.configure
pytest_collection_modifyitems = GATE.collection_modifyitems
