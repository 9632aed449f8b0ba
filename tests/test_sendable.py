"""Whatever the webhook kind accepts, both senders send as written, to a real receiver on 127.0.0.1;
whatever cannot be sent fails permanently without blaming its destination (domain/sendable.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import string
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from queue_system.api.app import create_app
from queue_system.config.settings import WorkerSettings, load_settings
from queue_system.domain.breaker import breaker_signal
from queue_system.domain.models import AttemptResult, Outcome
from queue_system.domain.sendable import header_value_problem, request_problem
from queue_system.errors import InvalidInput
from queue_system.kinds.registry import Registry, RunContext, TaskKind
from queue_system.kinds.webhook import webhook_kind
from queue_system.transports.async_http import AsyncHttpSender, PoolLimits
from queue_system.transports.http import WebhookRequest, exchange, send
from tests.support.receiver import Receiver
from tests.support.webhooks import StubDNS, run_task

TOKEN_CHARS = "!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits
ANY_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)  # every code point JSON can carry
NAMES = st.one_of(st.text(st.sampled_from(TOKEN_CHARS), min_size=1, max_size=12), ANY_TEXT)
VALUES = st.one_of(
    st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("\t\r\n\x00\x7f"), max_size=16
    ),
    ANY_TEXT,
)


class Senders:
    """The worker's two senders, as it runs them: aiohttp on an event loop of its own, httpx in a thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.aio = AsyncHttpSender(PoolLimits())
        self._run(self.aio.open())
        self.sync = httpx.Client()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def both(self, request: WebhookRequest) -> tuple[AttemptResult, AttemptResult]:
        return send(self.sync, request, 5.0), self._run(self.aio.send(request, 5.0))

    def run_exchange(self, request: WebhookRequest) -> AttemptResult:
        session = self.aio._session
        assert session is not None
        result: AttemptResult = self._run(self.aio.exchange(session, request, 5.0))
        return result

    def close(self) -> None:
        self.sync.close()
        self._run(self.aio.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@pytest.fixture(scope="module")
def senders() -> Iterator[Senders]:
    s = Senders()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver(default=200) as rx:
        yield rx


@pytest.fixture(scope="module")
def kind() -> TaskKind:
    return webhook_kind(load_settings({"EGRESS_ALLOW_CIDRS": "127.0.0.0/8"}))


def context() -> RunContext:
    return RunContext("t-1", 1, 5.0, httpx.Client(), WorkerSettings(), threading.Event())


PROPERTY = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(st.dictionaries(NAMES, VALUES, max_size=3), st.sampled_from(["GET", "POST", "put", "DELETE"]))
def test_accepted_headers_are_sent_as_written_by_both_senders(
    senders: Senders, receiver: Receiver, kind: TaskKind, headers: dict[str, str], method: str
) -> None:
    raw = {"url": receiver.url("/p"), "method": method, "headers": headers, "body": "x"}
    try:
        hook = kind.decode(raw)  # what the submit runs
    except InvalidInput as exc:
        refused = exc.field
    else:
        refused = None
    if refused is not None:
        assert refused.startswith("payload.headers")
        return
    request = kind.build_request(hook, context())
    assert isinstance(request, WebhookRequest)
    before = receiver.count
    results = senders.both(request)
    assert [r.outcome for r in results] == [Outcome.SUCCESS] * 2, results
    assert receiver.wait_for(before + 2, timeout=5)
    for seen in receiver.requests[before : before + 2]:
        for name, value in headers.items():
            assert seen.headers[name.lower()] == value


@PROPERTY
@given(NAMES, VALUES)
def test_an_unsendable_request_fails_permanently_without_blaming_the_destination(
    senders: Senders, receiver: Receiver, name: str, value: str
) -> None:
    """The senders' own check, for a task stored before the submit checked (no submit here)."""
    request = WebhookRequest(url=receiver.url("/raw"), headers={name: value})
    before = receiver.count
    results = senders.both(request)
    if request_problem(request.url, request.headers) is None:
        assert [r.outcome for r in results] == [Outcome.SUCCESS] * 2, results
        return
    for result in results:
        assert result.outcome is Outcome.PERMANENT and result.error
        assert result.error.startswith("unsendable request")
        assert breaker_signal(result) == ""
    assert receiver.count == before  # nothing went out


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:0/x", "http://127.0.0.1:9/x\n", "http://127.0.0.1:9\\@example.com/", "http://[::1/x"],
)
def test_an_unsendable_url_fails_permanently_without_blaming_the_destination(
    senders: Senders, url: str
) -> None:
    for result in senders.both(WebhookRequest(url=url)):
        assert result.outcome is Outcome.PERMANENT and breaker_signal(result) == "", result


@pytest.mark.parametrize(
    "headers", [{"X-A": "\x0b"}, {"X-A": "\x01"}, {"X-A\n": "v"}, {"X-A": "é"}, {"": "v"}]
)
def test_the_clients_own_refusal_is_permanent_and_not_the_destinations(
    senders: Senders, receiver: Receiver, headers: dict[str, str]
) -> None:
    """Below our check (a rule of a client's we might not know): what each client refuses to write
    is classified as unsendable, never as a transient failure of the destination."""
    request = WebhookRequest(url=receiver.url("/below"), headers=headers)
    before = receiver.count
    results = [exchange(senders.sync, request, 5.0), senders.run_exchange(request)]
    for result in results:
        if result.outcome is Outcome.SUCCESS:  # this client sends it; our rule refuses it anyway
            continue
        assert result.outcome is Outcome.PERMANENT, result
        assert result.error and result.error.startswith("unsendable request")
        assert breaker_signal(result) == ""
    assert any(r.outcome is Outcome.PERMANENT for r in results)  # at least one client refuses each
    assert receiver.count - before == sum(r.outcome is Outcome.SUCCESS for r in results)


def test_a_transient_failure_still_blames_the_destination() -> None:
    assert breaker_signal(AttemptResult(Outcome.TRANSIENT, error="timeout")) == "endpoint"
    assert (
        breaker_signal(AttemptResult(Outcome.TRANSIENT, error="ConnectError", connect_failed=True)) == "host"
    )
    assert breaker_signal(AttemptResult(Outcome.PERMANENT, status_code=404)) == "up"


# -- a task stored before the rule, through the real runner, store and breaker -------------------


def destination_row(api: TestClient[Any], port: int, path: str = "") -> dict[str, Any]:
    """The host's row (or, with a `path`, that endpoint's)."""
    body = api.get("/api/v1/destinations").json()
    rows: dict[str, dict[str, Any]] = {row["destination"]: row for row in body["items"] + body["endpoints"]}
    return rows.get(f"http://127.0.0.1:{port}{path}", {"state": "closed", "failures": 0})


def test_a_stored_unsendable_task_fails_permanently_and_leaves_its_breaker_closed(
    redis_client: redis.Redis, redis_url: str
) -> None:
    env = {"REDIS_URL": redis_url, "EGRESS_ALLOW_CIDRS": "127.0.0.0/8", "WEBHOOK_BREAKER_THRESHOLD": "1"}
    settings = load_settings(env)
    # The API as it was: no check on the payload, so the task is stored as main stored it.
    unchecked = Registry([dataclasses.replace(webhook_kind(settings), check=None)])
    with Receiver(default=200) as rx, TestClient(create_app(settings, registry=unchecked)) as api:
        hook = {"url": rx.url("/hook"), "headers": {"X-Inj\n": "v"}, "id": "old-1"}
        assert api.post("/api/v1/tasks", json=hook).status_code == 201
        run_task(redis_client, settings, "old-1", StubDNS({}))
        task = api.get("/api/v1/tasks/old-1").json()
        assert task["status"] == "failed" and task["attempts"] == 1, task
        [attempt] = task["attempt_history"]
        assert attempt["outcome"] == "permanent" and attempt["error"].startswith("unsendable request")
        assert rx.count == 0
        # A breaker opening after 1 failure: still closed, its failures not counted.
        for path in ("", "/hook"):  # neither the host's breaker nor the endpoint's
            assert destination_row(api, rx.port, path)["state"] == "closed"
            assert destination_row(api, rx.port, path)["failures"] == 0
        # ...so the next, healthy webhook to the same destination goes out at once.
        assert api.post("/api/v1/tasks", json={"url": rx.url("/hook"), "id": "new-1"}).status_code == 201
        run_task(redis_client, settings, "new-1", StubDNS({}))
        assert api.get("/api/v1/tasks/new-1").json()["status"] == "completed"
        assert rx.count == 1


@given(VALUES)
def test_the_fast_path_of_the_value_rule_agrees_with_its_grammar(value: str) -> None:
    grammar = re.fullmatch(r"(?:[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?)?", value)  # RFC 9110, ASCII only
    assert (header_value_problem(value) is None) == (grammar is not None)


def test_a_stored_url_with_credentials_is_still_delivered(senders: Senders, receiver: Receiver) -> None:
    """Refused at submit (policy: they would be shown); a task stored before that rule keeps the
    contract it was accepted under and is sent, as both clients can."""
    url = receiver.url("/old").replace("http://", "http://u:p@")
    before = receiver.count
    assert [r.outcome for r in senders.both(WebhookRequest(url=url))] == [Outcome.SUCCESS] * 2
    assert receiver.wait_for(before + 2, timeout=5)
