"""Reading the API's GET /metrics in tests: every sample by name and labels."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families


def scrape(
    client: TestClient[Any], key: str | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics -> {(sample name, sorted labels): value}. `key`: with keys on, any key."""
    response = client.get("/metrics", headers={"X-API-Key": key} if key else None)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
