"""The delivery loop against real receivers on 127.0.0.1 (bench/slow_receiver.py, an asyncio server
that counts its open connections and unanswered requests)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from bench.slow_receiver import SlowReceiver
from queue_system.domain.models import MAX_RESPONSE_BODY, AttemptResult, Outcome
from queue_system.transports.async_http import (
    AsyncHttpSender,
    PoolLimits,
    WebhookRequest,
    classify_status,
    destination,
)
from queue_system.transports.http import classify
from queue_system.worker.delivery_loop import Admission, Completed, DeliveryLoop

TAKEN = Admission.TAKEN


@dataclass(frozen=True, slots=True, eq=False)
class Delivery:
    """What the tests send: the loop's `Sendable`, with a key to find it again."""

    request: WebhookRequest
    timeout_s: float
    key: Any = None  # a test's handle: an int or a name


class Outcomes:
    """The completion callback: collects outcomes; `wait_for(n)` returns when n have arrived."""

    def __init__(self) -> None:
        self.items: list[Completed[Delivery]] = []
        self.threads: set[str] = set()
        self._cond = threading.Condition()

    def __call__(self, batch: list[Completed[Delivery]]) -> None:
        with self._cond:
            self.items += batch
            self.threads.add(threading.current_thread().name)
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = 10) -> list[Completed[Delivery]]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.items) >= n, timeout), (len(self.items), n)
            return list(self.items)

    def results(self) -> list[AttemptResult]:
        with self._cond:
            return [c.result for c in self.items]


Factory = Callable[..., tuple[DeliveryLoop[Delivery], Outcomes]]


@pytest.fixture
def make_loop() -> Iterator[Factory]:
    started: list[DeliveryLoop[Delivery]] = []

    def make(
        max_inflight: int = 256, max_per_host: int = 32, max_waiting_per_host: int | None = None
    ) -> tuple[DeliveryLoop[Delivery], Outcomes]:
        outcomes = Outcomes()
        sender = AsyncHttpSender(PoolLimits(max_connections=max_inflight, max_per_host=max_per_host))
        loop: DeliveryLoop[Delivery] = DeliveryLoop(
            sender,
            outcomes,
            max_inflight=max_inflight,
            max_per_host=max_per_host,
            max_waiting_per_host=max_waiting_per_host,
        )
        loop.start()
        started.append(loop)
        return loop, outcomes

    yield make
    for loop in started:
        loop.stop(grace=0)


def hook(url: str, timeout_s: float = 5.0, key: int | str | None = None) -> Delivery:
    return Delivery(WebhookRequest(url=url, content=b'{"event": "test"}'), timeout_s, key)


def poll(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


def test_many_deliveries_in_flight_from_one_thread(make_loop: Factory) -> None:
    loop, outcomes = make_loop(max_inflight=200, max_per_host=200)
    with SlowReceiver(delay_ms=300) as rx:
        for i in range(120):
            assert loop.submit(hook(rx.url(f"/h/{i}"))) is TAKEN
        done = outcomes.wait_for(120)
        # One submitting thread, one loop thread: far more requests than threads were open at once.
        assert rx.stats.max_active >= 100
    assert all(c.result.outcome is Outcome.SUCCESS for c in done)
    assert outcomes.threads == {"delivery-done"}  # outcomes are recorded off the loop thread


def test_per_destination_cap_is_never_exceeded(make_loop: Factory) -> None:
    loop, outcomes = make_loop(max_inflight=100, max_per_host=5)
    with SlowReceiver(delay_ms=30) as rx:
        for _ in range(60):
            assert loop.submit(hook(rx.url())) is TAKEN
        assert poll(lambda: loop.by_destination().get(destination(rx.url())) is not None)
        running, waiting = loop.by_destination()[destination(rx.url())]
        assert running == 5
        assert waiting > 0
        done = outcomes.wait_for(60)
        assert rx.stats.max_active <= 5
        assert rx.stats.max_connections <= 5  # the keep-alive pool matches the cap
    assert all(c.result.outcome is Outcome.SUCCESS for c in done)


def test_a_dead_destination_does_not_block_another(make_loop: Factory) -> None:
    loop, outcomes = make_loop(max_inflight=10, max_per_host=4)
    with SlowReceiver(mode="hang") as dead, SlowReceiver(delay_ms=10) as healthy:
        t0 = time.monotonic()
        for _ in range(30):  # three times the global bound: the waiters hold no global slot
            assert loop.submit(hook(dead.url(), timeout_s=30), timeout=2) is TAKEN
        assert time.monotonic() - t0 < 2
        assert poll(lambda: loop.by_destination().get(destination(dead.url())) == (4, 26))
        assert poll(lambda: dead.stats.active == 4)
        assert loop.in_flight() == 4
        for i in range(20):
            assert loop.submit(hook(healthy.url(), key=i), timeout=2) is TAKEN
        done = outcomes.wait_for(20, timeout=5)
        assert sorted(c.delivery.key for c in done) == list(range(20))
        assert dead.stats.max_active == 4
        report = loop.drain(timeout=0.2)
        assert len(report.not_started) == 26
        assert len(report.unfinished) == 4


def test_max_inflight_blocks_the_submitter(make_loop: Factory) -> None:
    loop, outcomes = make_loop(max_inflight=4, max_per_host=32)
    with SlowReceiver(delay_ms=400) as rx:
        for _ in range(4):
            assert loop.submit(hook(rx.url()), timeout=1) is TAKEN
        t0 = time.monotonic()
        assert loop.submit(hook(rx.url()), timeout=0.1) is Admission.FULL
        assert time.monotonic() - t0 >= 0.1
        assert loop.in_flight() == 4
        assert loop.submit(hook(rx.url()), timeout=5) is TAKEN  # once a delivery ends
        assert time.monotonic() - t0 >= 0.2
        outcomes.wait_for(5)
        assert rx.stats.max_active <= 4


def test_timeouts_and_refused_connections_are_transient(make_loop: Factory) -> None:
    loop, outcomes = make_loop()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    with SlowReceiver(mode="hang") as dead:
        assert loop.submit(hook(dead.url(), timeout_s=0.3, key="timeout")) is TAKEN
        assert loop.submit(hook(f"http://127.0.0.1:{closed_port}/x", key="refused")) is TAKEN
        done = {c.delivery.key: c for c in outcomes.wait_for(2)}
    timeout, refused = done["timeout"].result, done["refused"].result
    assert timeout.outcome is Outcome.TRANSIENT
    assert timeout.error is not None and timeout.error.startswith("timeout after 0.3s")
    assert 250 <= done["timeout"].duration_ms < 2000
    assert refused.outcome is Outcome.TRANSIENT
    assert refused.error is not None and "Connect" in refused.error


@pytest.mark.parametrize(
    ("behaviour", "outcome", "retry_after_ms"),
    [
        ({"status": 200}, Outcome.SUCCESS, None),
        ({"status": 204}, Outcome.SUCCESS, None),
        ({"status": 404}, Outcome.PERMANENT, None),
        ({"status": 429}, Outcome.TRANSIENT, None),
        ({"error_rate": 1.0, "retry_after": "7"}, Outcome.TRANSIENT, 7000),
    ],
)
def test_statuses_are_classified(
    make_loop: Factory, behaviour: dict[str, Any], outcome: Outcome, retry_after_ms: int | None
) -> None:
    loop, outcomes = make_loop()
    with SlowReceiver(delay_ms=0, **behaviour) as rx:
        assert loop.submit(hook(rx.url())) is TAKEN
        (done,) = outcomes.wait_for(1)
    assert done.result.outcome is outcome
    assert done.result.retry_after_ms == retry_after_ms
    assert done.result.status_code == behaviour.get("status", 500)


def test_a_large_body_is_cut(make_loop: Factory) -> None:
    loop, outcomes = make_loop()
    with SlowReceiver(delay_ms=0, body=b"x" * 300_000) as rx:
        assert loop.submit(hook(rx.url())) is TAKEN
        (done,) = outcomes.wait_for(1)
    assert done.result.outcome is Outcome.SUCCESS
    assert done.result.response_body == "x" * MAX_RESPONSE_BODY


@pytest.mark.parametrize("code", [200, 201, 301, 400, 404, 408, 410, 425, 429, 500, 503])
@pytest.mark.parametrize("retry_after", [None, "3", "Wed, 21 Oct 2015 07:28:00 GMT", "soon"])
def test_classification_matches_the_sync_sender(code: int, retry_after: str | None) -> None:
    headers = {"Retry-After": retry_after} if retry_after else {}
    expected = classify(httpx.Response(code, headers=headers), b"body")
    assert classify_status(code, retry_after, b"body") == expected


def test_drain_lets_running_deliveries_finish_and_hands_back_the_rest(make_loop: Factory) -> None:
    loop, outcomes = make_loop(max_inflight=50, max_per_host=3)
    with SlowReceiver(delay_ms=300) as rx:
        for i in range(10):
            assert loop.submit(hook(rx.url(), key=i)) is TAKEN
        assert poll(lambda: rx.stats.active == 3)
        t0 = time.monotonic()
        report = loop.drain(timeout=5)
        assert time.monotonic() - t0 < 1.5  # returned when the three ended, not at the bound
        assert report.unfinished == []
        assert sorted(d.key for d in report.not_started) == list(range(3, 10))
        done = outcomes.wait_for(3)
        assert sorted(c.delivery.key for c in done) == [0, 1, 2]
        assert all(c.result.outcome is Outcome.SUCCESS for c in done)
        assert loop.submit(hook(rx.url())) is Admission.DRAINING
        assert rx.stats.requests == 3


def test_drain_is_bounded(make_loop: Factory) -> None:
    loop, outcomes = make_loop()
    with SlowReceiver(mode="hang") as dead:
        assert loop.submit(hook(dead.url(), timeout_s=30, key="stuck")) is TAKEN
        assert poll(lambda: dead.stats.active == 1)
        t0 = time.monotonic()
        report = loop.stop(grace=0.3)
        assert 0.3 <= time.monotonic() - t0 < 2
    assert [d.key for d in report.unfinished] == ["stuck"]
    assert outcomes.results() == []  # cancelled: no outcome; the task's lease recovers it


class Blocked(Exception):
    """What an egress guard raises for a forbidden address (not an OSError: aiohttp would wrap it)."""


class GuardResolver(AbstractResolver):
    """A stand-in egress guard: names resolve to 127.0.0.1, except blocked.test; literals are refused."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host == "blocked.test" or host[0].isdigit():
            raise Blocked(f"{host} is not allowed")
        return [
            ResolveResult(hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET, proto=0, flags=0)
        ]

    async def close(self) -> None:
        pass


def test_an_egress_guard_plugs_in_as_the_resolver() -> None:
    outcomes = Outcomes()
    sender = AsyncHttpSender(PoolLimits(), resolver_factory=GuardResolver, permanent_errors=(Blocked,))
    loop = DeliveryLoop(sender, outcomes)
    loop.start()
    try:
        with SlowReceiver(delay_ms=0) as rx:
            for key, host in [
                ("named", "allowed.test"),
                ("blocked", "blocked.test"),
                ("literal", "127.0.0.1"),
            ]:
                assert loop.submit(hook(f"http://{host}:{rx.port}/x", key=key)) is TAKEN
            done = {c.delivery.key: c.result for c in outcomes.wait_for(3)}
            assert rx.stats.requests == 1
    finally:
        loop.stop(grace=0)
    assert done["named"].outcome is Outcome.SUCCESS
    assert done["blocked"].outcome is Outcome.PERMANENT
    assert done["blocked"].error == "Blocked: blocked.test is not allowed"
    assert done["literal"].outcome is Outcome.PERMANENT


def test_an_unusable_url_fails_permanently(make_loop: Factory) -> None:
    loop, outcomes = make_loop()
    assert loop.submit(hook("http://127.0.0.1:99999/x")) is TAKEN
    (done,) = outcomes.wait_for(1)
    assert done.result.outcome is Outcome.PERMANENT
    assert loop.in_flight() == 0


def test_a_destination_with_enough_waiting_is_saturated(make_loop: Factory) -> None:
    loop, outcomes = make_loop(max_inflight=50, max_per_host=2, max_waiting_per_host=3)
    with SlowReceiver(mode="hang") as dead, SlowReceiver(delay_ms=0) as healthy:
        admissions = []
        for _ in range(5):
            admissions.append(loop.submit(hook(dead.url(), timeout_s=30)))
            poll(lambda: sum(loop.by_destination().get(destination(dead.url()), (0, 0))) == len(admissions))
        assert admissions == [TAKEN] * 5
        assert loop.by_destination()[destination(dead.url())] == (2, 3)
        assert loop.submit(hook(dead.url())) is Admission.SATURATED
        assert loop.submit(hook(healthy.url())) is TAKEN  # other destinations are unaffected
        outcomes.wait_for(1)


def test_the_receiver_fails_and_hangs_at_the_given_rates(make_loop: Factory) -> None:
    loop, outcomes = make_loop()
    with SlowReceiver(delay_ms=0, error_rate=0.3, hang_rate=0.2) as rx:
        for _ in range(200):
            assert loop.submit(hook(rx.url(), timeout_s=0.5)) is TAKEN
        done = outcomes.wait_for(200)
        s = rx.stats
        assert s.requests == 200
        assert s.answered[200] + s.answered[500] + s.hung == 200
        assert 20 <= s.hung <= 60 and 35 <= s.answered[500] <= 85  # seeded: the same every run
    kinds = {(c.result.outcome, c.result.status_code) for c in done}
    assert kinds == {(Outcome.SUCCESS, 200), (Outcome.TRANSIENT, 500), (Outcome.TRANSIENT, None)}


def test_the_receiver_reports_its_counters_over_http() -> None:
    with SlowReceiver(delay_ms=0) as rx, httpx.Client() as client:
        assert client.post(rx.url("/a"), content=b"x").status_code == 200
        stats = client.get(rx.url("/_stats")).json()
        assert stats["requests"] == 1 and stats["answered"] == {"200": 1}
        assert client.post(rx.url("/_reset")).status_code == 200
        assert client.get(rx.url("/_stats")).json()["requests"] == 0
