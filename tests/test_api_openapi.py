"""The OpenAPI document declares every answer (problem details included), and query parameters
keep their formats. The fuzzer (tests/fuzz, `make fuzz`) checks the running app against it; these
are the fast, focused checks `make test` runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.config.settings import load_settings

PROBLEM = "application/problem+json"
# What the auth guard and rate limit answer in front of every /api/v1 route and old-system alias.
GUARDED = {"401", "429"}
OPEN = {"/health", "/healthz", "/ready"}


@pytest.fixture
def client(redis_client: redis.Redis, redis_url: str) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(load_settings({"REDIS_URL": redis_url}))) as test_client:
        yield test_client


@pytest.fixture
def document(client: TestClient[Any]) -> dict[str, Any]:
    schema: dict[str, Any] = client.get("/schema/openapi.json").json()
    return schema


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                yield path, method.upper(), operation


def test_every_error_is_a_declared_problem(document: dict[str, Any]) -> None:
    for path, method, operation in _operations(document):
        responses = operation["responses"]
        for status, response in responses.items():
            if status.startswith(("4", "5")) and path != "/ready":
                assert list(response["content"]) == [PROBLEM], (method, path, status)
                assert response["content"][PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
        if path not in OPEN:
            assert responses.keys() >= GUARDED, (method, path)
            assert "503" in responses, (method, path)
            assert ("403" in responses) == (method != "GET"), (method, path)


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("POST", "/api/v1/tasks", {"200", "201", "400", "409", "413", "422"}),
        ("POST", "/api/v1/tasks/batch", {"200", "201", "400", "413", "422", "503"}),
        ("GET", "/api/v1/tasks", {"200", "400", "422"}),
        ("GET", "/api/v1/tasks/{task_id}", {"200", "404"}),
        ("POST", "/api/v1/tasks/{task_id}/cancel", {"200", "404", "409"}),
        ("POST", "/api/v1/tasks/{task_id}/retry", {"200", "404", "409"}),
        ("DELETE", "/api/v1/tasks/{task_id}", {"204", "404"}),
        ("POST", "/enqueue", {"200", "201", "409", "413", "422"}),
        ("GET", "/task", {"200", "404", "422"}),
        ("GET", "/ready", {"200", "503"}),
    ],
)
def test_route_declares_what_it_answers(
    document: dict[str, Any], method: str, path: str, statuses: set[str]
) -> None:
    assert statuses <= document["paths"][path][method.lower()]["responses"].keys()


def test_problem_schema_and_strict_request_bodies(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert set(schemas["Problem"]["required"]) == {"type", "title", "status", "detail", "instance"}
    assert {"field", "errors", "known_types", "location"} <= schemas["Problem"]["properties"].keys()
    # Bodies that refuse unknown fields say so, so generated "valid" bodies are valid.
    for name in ("SubmitTask", "RetrySpec", "Enqueue", "Job"):
        assert schemas[name]["additionalProperties"] is False, name
    # Responses may grow fields: they are not closed.
    assert "additionalProperties" not in schemas["TaskOut"]


def test_time_filters_are_documented_as_date_times(document: dict[str, Any]) -> None:
    params = {p["name"]: p for p in document["paths"]["/api/v1/tasks"]["get"]["parameters"]}
    for name in ("created_after", "created_before"):
        assert params[name]["schema"]["format"] == "date-time"


@pytest.mark.parametrize(
    "value",
    [
        "0.5",
        "1700000000",
        "2020-01-01",
        "2020-01-01T00:00:00",  # no zone
        "2020-02-30T00:00:00Z",
        "2020-01-01T25:00:00Z",
        "2020-01-01T00:00:00+25:00",
        "yesterday",
    ],
)
@pytest.mark.parametrize("field", ["created_after", "created_before"])
def test_a_time_filter_that_is_not_rfc3339_is_a_400_naming_it(
    client: TestClient[Any], field: str, value: str
) -> None:
    r = client.get("/api/v1/tasks", params={field: value})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["field"] == field


def test_rfc3339_time_filters_select(client: TestClient[Any]) -> None:
    created = client.post("/api/v1/tasks", json={"type": "echo", "payload": "x"}).json()["created_at"]
    for after, expected in (
        ("2000-01-01T00:00:00Z", 1),
        ("2000-01-01t00:00:00.5+01:00", 1),
        ("2016-12-31T23:59:60Z", 1),  # a leap second is RFC 3339
        (created, 1),  # inclusive
        ("2999-01-01T00:00:00.123456789-05:30", 0),
    ):
        r = client.get("/api/v1/tasks", params={"created_after": after})
        assert r.status_code == 200, (after, r.text)
        assert len(r.json()["items"]) == expected, after
    assert len(client.get("/api/v1/tasks", params={"created_before": created}).json()["items"]) == 1


def test_every_documented_body_example_is_accepted(client: TestClient[Any], document: dict[str, Any]) -> None:
    sent = 0
    for path, method, operation in _operations(document):
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
        for example in body.get("schema", {}).get("examples", []):
            r = client.request(method, path, json=example)
            assert r.status_code == 201, (method, path, example, r.text)
            sent += 1
    assert sent >= 8  # three forms on each of the two typed routes, two for /enqueue, one for /job
