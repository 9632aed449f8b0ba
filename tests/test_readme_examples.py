"""The README's first minute and the docs' "Coming from another task queue" examples (docs/coming-from.md),
run in order against the real app (in-process, real Redis): each must succeed (2xx); the user-kind
example of docs/task-kinds.md runs as a module. tests/test_docs_examples.py runs every other shell
example of README.md and docs/ against real processes, with the curl parsing below."""

from __future__ import annotations

import re
import shlex
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.cli.main import main
from queue_system.config.settings import load_settings
from queue_system.kinds import Registry, backoff_policy
from tests.support.examples import README, as_request, first_minute

DOCS = README.parent / "docs"


def readme_examples(section: str, page: Path = README) -> list[list[str]]:
    text = page.read_text()
    match = re.search(rf"<!-- examples:{section} -->\s*```sh\n(.*?)```", text, re.S)
    assert match, f"{page.name} has no examples:{section} block"
    return [shlex.split(line) for line in match.group(1).splitlines() if line.startswith("curl ")]


def test_the_first_minute_posts_to_the_dev_inbox(redis_client: redis.Redis, redis_url: str) -> None:
    curl, cli = first_minute()
    method, path, headers, data = as_request(curl)
    # As `make run` has it in development: the inbox on, loopback open to webhooks.
    dev = {"DEV_INBOX": "true", "EGRESS_ALLOW_CIDRS": "127.0.0.0/8"}
    settings = load_settings({"REDIS_URL": redis_url, **dev})
    with TestClient(create_app(settings)) as client:
        created = client.request(method, path, headers=headers, content=data)
        assert created.status_code == 201, created.text
        url = created.json()["payload"]["url"]
        assert url == "http://127.0.0.1:8080/dev/inbox/demo"  # the default API_PORT: `make run`'s own
        inbox = url.removeprefix("http://127.0.0.1:8080")
        assert client.post(inbox, content=b"{}").status_code == 200  # what the worker will find there
        assert client.get("/api/v1/dev/inbox/demo").json()["items"]
    assert cli[:2] == ["queue-system", "inbox"] and cli[2] == "demo"
    assert "inbox" in main.commands


@pytest.fixture
def client(redis_client: redis.Redis, redis_url: str) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(load_settings({"REDIS_URL": redis_url}))) as test_client:
        yield test_client


def test_coming_from_examples_all_succeed(client: TestClient[Any]) -> None:
    examples = readme_examples("coming-from", DOCS / "coming-from.md")
    assert len(examples) >= 13
    for argv in examples:
        method, path, headers, data = as_request(argv)
        response = client.request(method, path, headers=headers, content=data)
        assert 200 <= response.status_code < 300, (argv, response.text)


def test_aliases_answer_with_our_task_fields(client: TestClient[Any]) -> None:
    r = client.post("/enqueue", json={"id": "e-1", "payload": "Hi", "max_retries": 2})
    assert r.status_code == 201
    assert r.json()["type"] == "echo"
    assert r.json()["retry"] == {"max_retries": 2}
    assert r.json()["task_id"] == "e-1"
    assert r.headers["location"] == "/api/v1/tasks/e-1"
    assert client.post("/enqueue", json={"payload": {"url": "http://x.test/h"}}).json()["type"] == "webhook"
    assert client.post("/enqueue", json={"payload": [1]}).json()["field"] == "type"
    assert client.post("/job", json={"job_type": "reverse", "payload": "abc"}).json()["type"] == "reverse"
    assert client.post("/job", json={"payload": "abc"}).json()["field"] == "job_type"
    assert client.get("/task", params={"id": "e-1"}).json()["id"] == "e-1"
    assert client.get("/task", params={"id": "nope"}).status_code == 404
    assert client.get("/job/e-1").json()["attempt_history"] == []
    assert [t["id"] for t in client.get("/jobs").json()["items"]][-1] == "e-1"
    assert client.get("/healthz").json() == {"status": "ok"}


def test_the_user_kind_example_needs_only_queue_system_kinds() -> None:
    text = (DOCS / "task-kinds.md").read_text()
    match = re.search(r"## Your own task kinds.*?```python\n(.*?)```", text, re.S)
    assert match, "docs/task-kinds.md has no user-kind example"
    source = match.group(1)
    imports = re.findall(r"^(?:from|import) (queue_system\S*)", source, re.M)
    assert imports == ["queue_system.kinds"]
    module = types.ModuleType("myapp_tasks")
    exec(compile(source, "docs/task-kinds.md", "exec"), module.__dict__)  # our own docs, run as a user would
    registry = Registry()
    registry.add_module(module)
    kind = registry.get("resize")
    assert kind.policy is backoff_policy
    assert kind.decode({"image_url": "https://example.com/a.png", "width": 300}).width == 300
