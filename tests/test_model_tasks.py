"""A model-based test of the task API: Hypothesis drives the real app (in process, on the real Redis
fixture) through creates, reads, lists, cancels, retries, deletes and worker attempts, and checks
every answer against a plain in-memory model.

Ids are drawn from the whole alphabet the API allows, biased toward what breaks a key space:
other live ids with `:` and a suffix of a real key (`:history`, `:payload`, `:inflight`), other
live ids' prefixes, ids made of separators only. Attempts go through the worker's own store
(`TaskStore.claim` / `finish`: the Lua scripts the worker runs), so histories and destination
slots are written as in production.

`make test` runs a bounded number of examples; `make fuzz` (QS_FUZZ=1) many more, longer.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.config.settings import load_settings
from queue_system.domain.models import Attempt, AttemptResult, Outcome, Task, TaskStatus
from queue_system.domain.retry import Decision
from queue_system.service.tasks import RESERVED_IDS
from queue_system.storage.types import Claim
from queue_system.storage.worker_store import RedisTaskStore
from tests.support.model import TIMEOUT, model_settings

MODEL_SETTINGS = model_settings(25, 30, fuzz_examples=400, fuzz_steps=60)
pytestmark = TIMEOUT

TASKS = "/api/v1/tasks"
ID_ALPHABET = string.ascii_letters + string.digits + "._:-"
KEY_SUFFIXES = (":history", ":payload", ":inflight", ":parked", ":task", ":idx", ":all", ":")
WAITING = {"pending", "scheduled", "retrying"}
RETRYABLE = {"failed", "cancelled"}
UNADDRESSABLE = {".", "..", *RESERVED_IDS}  # ids the API refuses (service/tasks.py): see check_client_id
PAGE = 7  # small pages: listing a few dozen tasks crosses several cursors


def segment(task_id: str) -> str:
    """The id as one path segment. Clients remove `.` and `..` segments (RFC 3986, 5.2.4), so
    an id made of dots only is sent percent-encoded."""
    return quote(task_id, safe="") if task_id.strip(".") else task_id.replace(".", "%2E")


def assert_absent(response: httpx.Response, task_id: str) -> None:
    """No such task: 404; for a reserved id (a route's name beside `{id}`: batch, actions), the
    route it names refuses the call instead (405, or 4xx for a bulk action without a filter)."""
    if task_id in RESERVED_IDS:
        assert 400 <= response.status_code < 500 and response.status_code != 409, (task_id, response.text)
    else:
        assert response.status_code == 404, (task_id, response.text)


@dataclass
class Modelled:
    body: dict[str, Any]  # the create request, as sent (resending it is idempotent)
    type: str
    status: str
    payload: Any
    attempts: int = 0
    claimed: Task | None = None  # the claim of the attempt under way (status processing)
    history: list[str] = field(default_factory=list)  # outcomes of the recorded attempts


class TaskModel(RuleBasedStateMachine):
    """Draws pick from the model's tasks in creation order (a dict's), never sorted by id: the
    server chooses random ids, and Hypothesis needs the same choices to draw the same steps."""

    def __init__(self, client: TestClient[Any], redis_client: redis.Redis) -> None:
        super().__init__()
        self.client = client
        self.redis = redis_client
        self.worker = RedisTaskStore(redis_client)
        self.tasks: dict[str, Modelled] = {}
        self.now = 1_900_000_000_000  # the worker's clock for claims and finishes (ms)
        redis_client.flushdb()

    # ---- helpers

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, path, **kwargs)
        assert response.status_code < 500, f"{method} {path} -> {response.status_code}: {response.text}"
        return response

    def draw_id(self, data: st.DataObject) -> str:
        live = list(self.tasks)  # in creation order, not sorted: a server-chosen id is random
        plain = st.text(ID_ALPHABET, min_size=1, max_size=128)
        edges = ["d2", "d2:payload", "d2:history", "x:inflight", ":", "::", "-", ".", "..", *RESERVED_IDS]
        choices = [plain, st.sampled_from(edges)]
        if live:
            some = st.sampled_from(live)
            choices += [
                st.builds(lambda i, s: (i + s)[:128], some, st.sampled_from(KEY_SUFFIXES)),
                some.map(lambda i: i.rsplit(":", 1)[0] or i),
                st.builds(lambda i, j: f"{i}:{j}"[:128], some, some),
            ]
        return data.draw(st.one_of(choices), label="id")

    def pick(self, data: st.DataObject) -> str:
        """A live id half the time (when there is one), else any id."""
        live: bool = bool(self.tasks) and data.draw(st.booleans(), label="a live one?")
        if live:
            return self.draw_live(data)
        return self.draw_id(data)

    def draw_live(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(list(self.tasks)), label="live id")

    def check_task(self, got: dict[str, Any], task_id: str, *, with_history: bool) -> None:
        want = self.tasks[task_id]
        assert got["id"] == task_id
        assert (got["type"], got["status"], got["payload"]) == (want.type, want.status, want.payload), got
        assert got["attempts"] == want.attempts, got
        if with_history:
            assert [a["outcome"] for a in got["attempt_history"]] == want.history, got

    def listed(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every page of a listing, following the cursors."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(len(self.tasks) + 2):
            query = {**params, "limit": PAGE, **({"cursor": cursor} if cursor else {})}
            response = self.call("GET", TASKS, params=query)
            assert response.status_code == 200, response.text
            page = response.json()
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items
        raise AssertionError(f"the listing {params} did not end after {len(items)} items")

    # ---- creating

    @rule(data=st.data(), kind=st.sampled_from(["webhook", "echo", "reverse"]), delayed=st.booleans())
    def create(self, data: st.DataObject, kind: str, delayed: bool) -> None:
        own_id: int = data.draw(st.integers(0, 9), label="own id?")  # 0: the server picks it
        task_id = self.draw_id(data) if own_id else None
        text = data.draw(st.text(max_size=20), label="text")
        body: dict[str, Any]
        if kind == "webhook":
            path = quote(data.draw(st.text(ID_ALPHABET, max_size=12), label="path"))
            body = {"url": f"http://127.0.0.1:9/{path}", "body": {"text": text}}
        else:
            body = {"type": kind, "payload": text}
        if delayed:
            body["delay"] = "1h"
        if task_id is not None:
            body["id"] = task_id
        response = self.call("POST", TASKS, json=body)
        existing = self.tasks.get(task_id) if task_id is not None else None
        if existing is not None:
            want = 200 if existing.body == body else 409
            assert response.status_code == want, (body, response.text)
            if want == 200:
                self.check_task(response.json(), task_id, with_history=False)  # type: ignore[arg-type]
            return
        if task_id in UNADDRESSABLE:  # refused: no HTTP client could address the task afterwards
            assert response.status_code == 422 and response.json()["field"] == "id", response.text
            return
        assert response.status_code == 201, (body, response.text)
        got = response.json()
        if task_id is not None:
            assert got["id"] == task_id
        status = "scheduled" if delayed else "pending"
        assert got["status"] == status, got
        if kind == "webhook":
            assert got["payload"]["url"] == body["url"] and got["payload"]["body"] == body["body"]
        else:
            assert got["payload"] == text
        # The request as the server compares it: the id it chose is the task's id, so a resend
        # that names it is the same request.
        request = {**body, "id": got["id"]}
        self.tasks[got["id"]] = Modelled(
            request, "webhook" if kind == "webhook" else kind, status, got["payload"]
        )

    @rule(data=st.data())
    def resubmit(self, data: st.DataObject) -> None:
        """The same request again: the same task, 200, unchanged; a different one: 409."""
        if not self.tasks:
            return
        task_id = self.draw_live(data)
        task = self.tasks[task_id]
        response = self.call("POST", TASKS, json=task.body)
        assert response.status_code == 200, response.text
        self.check_task(response.json(), task_id, with_history=False)
        other = {**task.body, "delay": "2h"}
        assert self.call("POST", TASKS, json=other).status_code == 409

    # ---- reading

    @rule(data=st.data(), alias=st.booleans())
    def get(self, data: st.DataObject, alias: bool) -> None:
        task_id = self.pick(data)
        if alias:  # the old system's `GET /task?id=`
            response = self.call("GET", "/task", params={"id": task_id})
        else:
            response = self.call("GET", f"{TASKS}/{segment(task_id)}")
        if task_id in self.tasks:
            assert response.status_code == 200, response.text
            self.check_task(response.json(), task_id, with_history=True)
        else:
            assert_absent(response, task_id)

    @rule(
        statuses=st.lists(st.sampled_from([s.value for s in TaskStatus]), max_size=3, unique=True),
        type_=st.sampled_from([None, "webhook", "echo", "reverse"]),
    )
    def list_filtered(self, statuses: list[str], type_: str | None) -> None:
        params: dict[str, Any] = {}
        if statuses:
            params["status"] = statuses
        if type_:
            params["type"] = type_
        items = self.listed(params)
        want = {
            i
            for i, t in self.tasks.items()
            if (not statuses or t.status in statuses) and type_ in (None, t.type)
        }
        assert [item["id"] for item in items if item["id"] in want] == [item["id"] for item in items], params
        assert sorted(item["id"] for item in items) == sorted(want), params

    # ---- changing

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        task_id = self.pick(data)
        response = self.call("POST", f"{TASKS}/{segment(task_id)}/cancel")
        task = self.tasks.get(task_id)
        if task is None:
            assert_absent(response, task_id)
        elif task.status in WAITING:
            assert response.status_code == 200, response.text
            task.status = "cancelled"
            self.check_task(response.json(), task_id, with_history=True)
        else:
            assert response.status_code == 409, (task.status, response.text)

    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        task_id = self.pick(data)
        response = self.call("POST", f"{TASKS}/{segment(task_id)}/retry")
        task = self.tasks.get(task_id)
        if task is None:
            assert_absent(response, task_id)
        elif task.status in RETRYABLE:
            assert response.status_code == 200, response.text
            task.status = "pending"
            self.check_task(response.json(), task_id, with_history=True)
        else:
            assert response.status_code == 409, (task.status, response.text)

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        task_id = self.pick(data)
        response = self.call("DELETE", f"{TASKS}/{segment(task_id)}")
        if task_id in self.tasks:
            assert response.status_code == 204, response.text
            del self.tasks[task_id]
        else:
            assert_absent(response, task_id)

    # ---- the worker's side: an attempt starts (claim) and ends (finish), through its own store

    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        pending = [i for i, t in self.tasks.items() if t.status == "pending"]
        if not pending:
            return
        task_id = data.draw(st.sampled_from(pending), label="claimed id")
        raw: Any = self.redis.hget(self.worker.keys.task(task_id), "token")
        current = int(raw or 0)
        token = data.draw(st.sampled_from([current, current, current - 1]), label="token")
        self.now += 1000
        reply = self.worker.claim(task_id, token, self.now, self.now + 60_000)
        if token != current:  # a stale message: no attempt
            assert not isinstance(reply, Claim), (task_id, token, current)
            return
        assert isinstance(reply, Claim), (task_id, reply)
        task = self.tasks[task_id]
        task.status, task.attempts, task.claimed = "processing", task.attempts + 1, reply.task

    @rule(data=st.data(), succeed=st.booleans())
    def finish(self, data: st.DataObject, succeed: bool) -> None:
        running = [i for i, t in self.tasks.items() if t.claimed is not None]
        if not running:
            return
        task = self.tasks[data.draw(st.sampled_from(running), label="finished id")]
        assert task.claimed is not None
        outcome = Outcome.SUCCESS if succeed else Outcome.PERMANENT
        status = TaskStatus.COMPLETED if succeed else TaskStatus.FAILED
        attempt = Attempt(n=task.attempts, started_at=self.now, duration_ms=5, outcome=outcome)
        self.now += 1000
        result = AttemptResult(outcome, result="ok" if succeed else None, error=None if succeed else "no")
        done = self.worker.finish(
            task.claimed, attempt, Decision(status), result, now=self.now, retention_ms=86_400_000
        )
        assert done.recorded
        task.status, task.claimed = status.value, None
        task.history.append(outcome.value)

    # ---- what must hold after every step

    @invariant()
    def the_list_is_the_model(self) -> None:
        items = self.listed({})
        assert sorted(item["id"] for item in items) == sorted(self.tasks)
        for item in items:
            self.check_task(item, item["id"], with_history=False)
        created = [item["created_at"] for item in items]
        assert created == sorted(created, reverse=True), "newest first"
        jobs = self.call("GET", "/jobs", params={"limit": 500})  # the old system's listing
        assert jobs.status_code == 200 and [t["id"] for t in jobs.json()["items"]] == [t["id"] for t in items]

    def teardown(self) -> None:
        try:
            for task_id in sorted(self.tasks):  # every live task reads back whole
                response = self.call("GET", f"{TASKS}/{segment(task_id)}")
                assert response.status_code == 200, (task_id, response.text)
                self.check_task(response.json(), task_id, with_history=True)
        finally:
            self.worker.close()


@pytest.fixture
def api(redis_client: redis.Redis, redis_url: str) -> Iterator[TestClient[Any]]:
    settings_ = load_settings({"REDIS_URL": redis_url, "EGRESS_ALLOW_CIDRS": "127.0.0.0/8"})
    with TestClient(create_app(settings_)) as client:
        yield client


def test_the_api_agrees_with_a_model_of_tasks(api: TestClient[Any], redis_client: redis.Redis) -> None:
    machine = lambda: TaskModel(api, redis_client)  # noqa: E731  (Hypothesis takes any factory)
    run_state_machine_as_test(machine, settings=MODEL_SETTINGS)  # type: ignore[arg-type]
