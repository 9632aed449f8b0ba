"""The API tests share: a webhook payload and the RFC 9457 problem check."""

from __future__ import annotations

from typing import Any

HOOK = {
    "url": "http://127.0.0.1:9/hook",
    "method": "POST",
    "headers": {"X-Custom-Header": "test"},
    "body": '{"test": "data"}',
}


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
