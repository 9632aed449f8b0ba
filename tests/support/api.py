"""The API tests share: the app in-process, a webhook payload and the RFC 9457 problem check."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.config.settings import load_settings

HOOK = {
    "url": "http://127.0.0.1:9/hook",
    "method": "POST",
    "headers": {"X-Custom-Header": "test"},
    "body": '{"test": "data"}',
}


def app_client(redis_url: str, **env: str) -> TestClient[Any]:
    """The real app on `redis_url` with the settings `env` (as the environment spells them)."""
    return TestClient(create_app(load_settings({"REDIS_URL": redis_url, **env})))


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"].startswith("urn:queue-system:problem:")
    if field is not None:
        assert body["field"] == field, body
        assert any(e["field"] == field for e in body["errors"])
    return body
