"""A path segment reaches the record it names or none (api/paths.py): `GET /api/v1/tasks/a%2F` was
task `a`. The API in-process on a real Redis for the property over every route with a `{param}`
(read off the app); one real API process (uvicorn) for what its own decoding does."""

from __future__ import annotations

import socket
import string
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.api.paths import ambiguity
from queue_system.config.settings import load_settings
from queue_system.domain.queues import QUEUES
from queue_system.service.tasks import ID_PATTERN, RESERVED_IDS
from tests.e2e.support import start_api
from tests.support.api import assert_problem

URL = "http://127.0.0.1:9/hook"
# The tasks stay scheduled: nothing delivers them meanwhile.
LATER = (datetime.now(UTC) + timedelta(days=30)).isoformat()


@pytest.fixture
def client(redis_client: redis.Redis, redis_url: str) -> Iterator[TestClient[Any]]:
    settings = load_settings({"REDIS_URL": redis_url, "EGRESS_ALLOW_CIDRS": "127.0.0.0/8"})
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def is_id(text: str) -> bool:
    return bool(ID_PATTERN.fullmatch(text)) and text not in {".", "..", *RESERVED_IDS}


def make_records(client: TestClient[Any], names: set[str]) -> None:
    """A scheduled task and a schedule called each of `names` (again if an earlier example deleted it)."""
    for name in names:
        task = client.post("/api/v1/tasks", json={"url": URL, "id": name, "run_at": LATER})
        assert task.status_code in (200, 201), task.text
        body = {"id": name, "task": {"url": URL}, "every": "1h"}
        schedule = client.post("/api/v1/schedules", json=body)
        assert schedule.status_code in (200, 201, 409), schedule.text


def snapshot(client: TestClient[Any], names: set[str]) -> dict[str, Any]:
    return {
        name: (client.get(f"/api/v1/tasks/{name}").json(), client.get(f"/api/v1/schedules/{name}").json())
        for name in names
    }


# -- the cases found ----------------------------------------------------------------------------

ENCODED = ["a%2F", "a%2f", "a%2Fcancel", "a%2F..%2Fa", "%2e", "%2E%2E", "a%00", "..%2Fa"]


@pytest.mark.parametrize("segment", ENCODED)
@pytest.mark.parametrize("prefix", ["/api/v1/tasks/", "/api/v1/schedules/", "/dashboard/tasks/", "/job/"])
def test_an_encoded_slash_or_dot_segment_reaches_no_record(
    client: TestClient[Any], prefix: str, segment: str
) -> None:
    make_records(client, {"a"})
    for method in ("GET", "DELETE"):
        body = assert_problem(client.request(method, prefix + segment), 404)
        assert body["type"] == "urn:queue-system:problem:not-found"
    response = client.post(f"/api/v1/tasks/{segment}/cancel")
    refused = assert_problem(response, 404)
    assert "names no record" in refused["detail"]
    assert response.headers["X-Request-ID"] == refused["request_id"]  # the app's before_send hooks ran
    assert client.get("/api/v1/tasks/a").json()["status"] == "scheduled"  # not cancelled, not deleted
    assert client.get("/api/v1/schedules/a").status_code == 200


def test_a_plain_trailing_slash_still_reaches_the_record(client: TestClient[Any]) -> None:
    make_records(client, {"a"})
    assert client.get("/api/v1/tasks/a/").json()["id"] == "a"
    assert client.get("/api/v1/queues/default/").status_code == 200


@pytest.mark.parametrize(
    ("raw", "path", "refused"),
    [
        (b"/api/v1/tasks/a%2F", "/api/v1/tasks/a/", True),
        (b"/api/v1/tasks/a%252F", "/api/v1/tasks/a/", True),  # decoded twice on the way
        (b"/api/v1/tasks/a%252F", "/api/v1/tasks/a%2F", False),  # the id `%2F`: no record has it
        (b"/api/v1/tasks/..", "/api/v1/tasks/..", True),
        (b"/api/v1/tasks/.a", "/api/v1/tasks/.a", False),
        (b"/api/v1/tasks/a%5C", "/api/v1/tasks/a\\", False),  # backslash: a character of the id
        (b"/api/v1/tasks/a;x", "/api/v1/tasks/a;x", False),
        (b"/api/v1/tasks/a%E2%88%95", "/api/v1/tasks/a\u2215", False),  # DIVISION SLASH
        (b"/api/v1/tasks/a%EF%BC%8F", "/api/v1/tasks/a\uff0f", False),  # FULLWIDTH SOLIDUS
        (b"/api/v1/tasks?next=%2F", "/api/v1/tasks", False),  # the query is not the path
        (b"/.well-known/x", "/.well-known/x", False),
    ],
)
def test_what_is_ambiguous(raw: bytes, path: str, refused: bool) -> None:
    assert (ambiguity(raw, path) is not None) is refused


# -- the property over every route --------------------------------------------------------------

NASTY = [
    "/",
    "%2F",
    "%252F",
    "/..",
    "/cancel",
    "/.",
    "\x00",
    "\\",
    ";x",
    "\u2215",
    "\uff0f",
    "%2e",
    "",
    "?x",
    "#",
]
SUFFIXES = st.one_of(st.sampled_from(NASTY), st.text(st.characters(exclude_categories=["Cs"]), max_size=6))
PREFIXES = st.text(st.sampled_from(string.ascii_letters + string.digits + "._:-"), min_size=1, max_size=8)
TEXTS = st.builds(lambda prefix, suffix: prefix + suffix, PREFIXES, SUFFIXES).filter(bool)
# Routes whose `{param}` is not a record: the schema's renderings, the dashboard's static files.
NOT_RECORDS = ("/schema/", "/dashboard/static/")


def encode(text: str, every_byte: bool) -> str:
    if every_byte:
        return "".join(f"%{byte:02X}" for byte in text.encode())
    segment = quote(text, safe="")
    # httpx (like browsers) resolves a plain `.`/`..` segment itself: the server would not see it.
    return segment.replace(".", "%2E") if segment in (".", "..") else segment


def records_of(template: str, tasks: set[str]) -> set[str]:
    """The names a route's `{param}` may reach."""
    if "/queues/" in template:
        return set(QUEUES)
    if "/operations/" in template:
        return set()  # their ids are the server's: no text drawn here is one
    return tasks


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXTS, every_byte=st.booleans())
def test_a_segment_reaches_the_record_it_names_or_none(
    client: TestClient[Any], text: str, every_byte: bool
) -> None:
    """For any text t, percent-encoded into every `{param}` of every route: a 2xx/3xx only when t
    names a record of that route; else a 4xx; never a 5xx, and no other record changes."""
    names = {text[:n] for n in range(1, len(text) + 1) if is_id(text[:n])}
    make_records(client, names)
    before = snapshot(client, names - {text})
    routes = [r for r in client.app.routes if "{" in r.path and not r.path.startswith(NOT_RECORDS)]
    assert len(routes) >= 15, [r.path for r in routes]
    segment = encode(text, every_byte)
    for route in routes:
        path = "/".join(segment if part.startswith("{") else part for part in route.path.split("/"))
        for method in sorted(route.methods - {"OPTIONS", "HEAD"}):
            response = client.request(method, path)  # no body: a bulk action could not start
            assert response.status_code < 500, (method, path, response.text)
            if text not in records_of(route.path, names):
                assert 400 <= response.status_code < 500, (method, path, response.text)
    assert snapshot(client, names - {text}) == before


# -- a real API process: uvicorn's own decoding --------------------------------------------------


def raw_request(base_url: str, target: str) -> tuple[int, str]:
    """One request sent as these exact bytes (httpx would resolve `..`)."""
    where = urlsplit(base_url)
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def test_a_real_server_refuses_them_too(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    proc, base_url = start_api(redis_url, tmp_path)
    try:
        created = httpx.post(
            f"{base_url}/api/v1/tasks", json={"url": URL, "id": "a", "run_at": LATER}, timeout=10
        )
        assert created.status_code == 201, created.text
        assert raw_request(base_url, "/api/v1/tasks/a/")[0] == 200
        for target in [
            "/api/v1/tasks/a%2F",
            "/api/v1/tasks/a%2f",
            "/api/v1/tasks/a/..",
            "/api/v1/tasks/%2e%2e",
        ]:
            status, body = raw_request(base_url, target)
            assert status == 404 and "names no record" in body, (target, body)
        # uvicorn decodes once: `%252F` is the id `%2F`, which no task has.
        assert raw_request(base_url, "/api/v1/tasks/a%252F")[0] == 404
    finally:
        proc.stop()
