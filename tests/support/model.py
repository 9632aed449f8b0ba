"""What the model-based tests (Hypothesis state machines on a real Redis) share: how many examples
`make test` and `make fuzz` (QS_FUZZ=1) run, the seed under CI, and the per-test timeout."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, Phase, settings

FUZZ = os.environ.get("QS_FUZZ") == "1"
# Passing, a model takes seconds; failing, Hypothesis shrinks the example for a few minutes.
TIMEOUT = pytest.mark.timeout(3600 if FUZZ else 300)


def model_settings(
    examples: int,
    steps: int,
    *,
    fuzz_examples: int = 300,
    fuzz_steps: int = 80,
    suppress: Sequence[HealthCheck] = (HealthCheck.too_slow, HealthCheck.filter_too_much),
) -> settings:
    """`examples` runs of up to `steps` steps each (`fuzz_*` under QS_FUZZ=1).

    One bug reported, shrunk, without the explain phase: several bugs shrunk side by side took
    Hypothesis's whole shrink budget (5 min, which pytest-timeout cannot cut short: Hypothesis
    takes its Failed for one more bug). Under CI (CI=true) the examples come from a fixed seed: a
    commit passes or fails there the same way every time; elsewhere each run draws new ones."""
    return settings(
        derandomize=os.environ.get("CI") == "true",
        max_examples=fuzz_examples if FUZZ else examples,
        stateful_step_count=fuzz_steps if FUZZ else steps,
        deadline=None,
        report_multiple_bugs=False,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        suppress_health_check=list(suppress),
    )
