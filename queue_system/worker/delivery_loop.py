"""Many webhook deliveries in flight per worker process, on one event loop in a daemon thread.

An actor thread claims a task and calls `submit()`: the delivery is handed to the loop and the
thread returns at once (its Dramatiq message stays unacknowledged: the caller's completion
callback records the outcome and acks in one step). Bounds:

- `max_inflight` deliveries hold a global slot; `submit()` blocks while all are taken
  (backpressure on the actor threads, so prefetched messages stay in Redis' queue).
- at most `max_per_host` per destination (scheme, host, port). A delivery waiting for its
  destination's slot holds no global slot, so a saturated or dead destination cannot block the
  others; when one of that destination's deliveries ends, its slots pass to the next waiter.
- optionally at most `max_waiting_per_host` waiting per destination (a soft bound: submits on
  their way to the loop are not counted yet): past it `submit()` answers SATURATED and the caller
  keeps the item (the worker's attempt owner gives the task back with UNCLAIM: a new message on
  its queue) rather than holding it in this process' memory.
- outcomes go to one completion thread, in batches (the caller can pipeline its FINISH calls),
  so the loop never waits on Redis.

The loop is generic over what it carries (`DeliveryLoop[T]`, T anything with a `request` and a
`timeout_s`: the worker's `attempts.Attempt`): the item comes back as it went in, in `Completed`.

`drain(timeout)` (SIGTERM): nothing new starts; deliveries in flight get until the timeout to
finish; those that never started are handed back, so the caller leaves their messages queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

import uvloop
from loguru import logger

from queue_system.domain.models import AttemptResult, Outcome
from queue_system.transports.async_http import AsyncHttpSender, Destination, WebhookRequest, destination


class Admission(StrEnum):
    """What `submit()` did with a delivery."""

    TAKEN = "taken"  # it will run; its outcome comes to the completion callback
    FULL = "full"  # max_inflight stayed taken until the submit timeout
    SATURATED = "saturated"  # max_waiting_per_host already wait for its destination
    DRAINING = "draining"  # the loop is draining or stopped


class Sendable(Protocol):
    """What the loop needs of an item: the request and its timeout (read-only)."""

    @property
    def request(self) -> WebhookRequest: ...

    @property
    def timeout_s(self) -> float: ...


T = TypeVar("T", bound=Sendable)


@dataclass(frozen=True, slots=True)
class Completed(Generic[T]):
    delivery: T  # the item as submitted
    result: AttemptResult
    duration_ms: int


@dataclass(frozen=True, slots=True)
class DrainReport(Generic[T]):
    not_started: list[T]  # never sent: leave their messages queued
    unfinished: list[T]  # still running at the deadline: cancelled by stop(), outcome unknown


@dataclass
class _Host(Generic[T]):
    running: int = 0
    waiting: deque[T] = field(default_factory=deque)


class DeliveryLoop(Generic[T]):
    def __init__(
        self,
        sender: AsyncHttpSender,
        on_complete: Callable[[list[Completed[T]]], None],
        *,
        max_inflight: int = 256,
        max_per_host: int = 32,
        max_waiting_per_host: int | None = None,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop,
    ) -> None:
        if max_inflight < 1 or max_per_host < 1:
            raise ValueError("max_inflight and max_per_host must be at least 1")
        self.sender = sender
        self.on_complete = on_complete
        self.max_inflight = max_inflight
        self.max_per_host = max_per_host
        self.max_waiting_per_host = max_waiting_per_host
        self._loop = loop_factory()
        self._loop_thread = threading.Thread(target=self._run_loop, name="delivery-loop", daemon=True)
        self._done: queue.SimpleQueue[Completed[T] | None] = queue.SimpleQueue()
        self._completion_thread = threading.Thread(target=self._complete, name="delivery-done", daemon=True)
        # All accounting below is guarded by _lock: actor threads take global slots, the loop
        # gives them back, and the counters are read from anywhere.
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._blocked = 0  # submitters waiting on _room: notify only then (a notify costs ~3% of a delivery)
        self._global = 0  # global slots taken (running, or handed to the loop and not yet placed)
        self._hosts: dict[Destination, _Host[T]] = {}
        self._running: dict[asyncio.Task[None], T] = {}
        self._stopping = False
        self._idle = asyncio.Event()  # set on the loop when nothing runs

    # ---- lifecycle
    def start(self) -> None:
        self._loop_thread.start()
        self._completion_thread.start()
        asyncio.run_coroutine_threadsafe(self.sender.open(), self._loop).result(30)

    def refuse_new(self) -> None:
        """From now on `submit()` answers DRAINING (a submit waiting for room too)."""
        with self._lock:
            self._stopping = True
            self._room.notify_all()

    def drain(self, timeout: float) -> DrainReport[T]:
        """Stop starting deliveries; wait up to `timeout` s for those in flight; report the rest."""
        with self._lock:
            self._stopping = True
            self._room.notify_all()
        future = asyncio.run_coroutine_threadsafe(self._drain(timeout), self._loop)
        return future.result(timeout + 30)

    def stop(self, grace: float) -> DrainReport[T]:
        """`drain(grace)`, then cancel what still runs, close the pool and the threads.

        Idempotent: a second call reports nothing."""
        if self._loop.is_closed():
            return DrainReport([], [])
        report = self.drain(grace)
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(30)
        self._done.put(None)
        self._completion_thread.join(30)
        self._loop.close()
        return report

    # ---- the actor threads' side
    def submit(self, delivery: T, timeout: float | None = None) -> Admission:
        """Hand a delivery to the loop; blocks while `max_inflight` are in flight.

        Anything but TAKEN: the delivery was not taken, the caller keeps the task."""
        deadline = None if timeout is None else time.monotonic() + timeout
        dest = self._saturation_key(delivery)
        with self._room:
            while self._global >= self.max_inflight and not self._stopping:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return Admission.FULL
                self._blocked += 1
                try:
                    self._room.wait(remaining)
                finally:
                    self._blocked -= 1
            if self._stopping:
                return Admission.DRAINING
            host = self._hosts.get(dest) if dest else None
            limit = self.max_waiting_per_host
            if host is not None and limit is not None and len(host.waiting) >= limit:
                return Admission.SATURATED
            self._global += 1
            # Scheduled under the lock: a drain that starts later runs after this placement.
            self._loop.call_soon_threadsafe(self._place, delivery)
        return Admission.TAKEN

    def _saturation_key(self, delivery: T) -> Destination | None:
        if self.max_waiting_per_host is None:
            return None
        try:
            return destination(delivery.request.url)
        except ValueError:
            return None  # placed, then failed permanently by _place

    # ---- counters
    def in_flight(self) -> int:
        """Deliveries holding a global slot (sending, or about to)."""
        with self._lock:
            return self._global

    def by_destination(self) -> dict[Destination, tuple[int, int]]:
        """destination -> (running, waiting for a slot)."""
        with self._lock:
            return {d: (h.running, len(h.waiting)) for d, h in self._hosts.items() if h.running or h.waiting}

    # ---- the loop's side
    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _place(self, delivery: T) -> None:
        """Start a delivery that holds a global slot, or park it behind its destination."""
        try:
            dest = destination(delivery.request.url)
        except ValueError as exc:  # e.g. a port out of range: no request can help
            result = AttemptResult(Outcome.PERMANENT, error=f"invalid URL: {exc}")
            self._done.put(Completed(delivery, result, 0))
            with self._lock:
                self._release_global()
            return
        with self._lock:
            host = self._hosts.get(dest)
            if host is None:
                host = self._hosts[dest] = _Host()
            if self._stopping or host.running >= self.max_per_host:
                # Waiting for the destination: give the global slot back to the actor threads.
                host.waiting.append(delivery)
                self._release_global()
                return
            host.running += 1
        self._start(delivery, dest)

    def _start(self, delivery: T, dest: Destination) -> None:
        # `dest` rides along: parsing the URL again per step was ~2% of a delivery's CPU.
        task = self._loop.create_task(self._deliver(delivery, dest))
        self._running[task] = delivery
        self._idle.clear()

    async def _deliver(self, delivery: T, dest: Destination) -> None:
        t0 = time.perf_counter()
        try:
            result = await self.sender.send(delivery.request, delivery.timeout_s)
        except asyncio.CancelledError:
            raise  # stop() after the drain deadline: no outcome; the task's lease recovers it
        except Exception as exc:  # a bug must not lose the task: retried like any transient failure
            logger.exception("webhook delivery raised")
            result = AttemptResult(Outcome.TRANSIENT, error=f"{type(exc).__name__}: {exc}")
        self._done.put(Completed(delivery, result, int((time.perf_counter() - t0) * 1000)))
        self._finished(dest)

    def _finished(self, dest: Destination) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._running.pop(task, None)
        with self._lock:
            host = self._hosts[dest]
            if host.waiting and not self._stopping:
                nxt = host.waiting.popleft()  # takes over both slots
            else:
                nxt = None
                host.running -= 1
                if not host.running and not host.waiting:
                    del self._hosts[dest]
                self._release_global()
        if nxt is not None:
            self._start(nxt, dest)
        elif not self._running:
            self._idle.set()

    def _release_global(self) -> None:
        """Give a global slot back (with _lock held)."""
        self._global -= 1
        if self._blocked:
            self._room.notify()

    async def _drain(self, timeout: float) -> DrainReport[T]:
        with self._lock:
            not_started = [d for h in self._hosts.values() for d in h.waiting]
            for h in self._hosts.values():
                h.waiting.clear()
        if self._running:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout)
        return DrainReport(not_started, list(self._running.values()))

    async def _shutdown(self) -> None:
        tasks = list(self._running)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.sender.close()

    # ---- the completion thread
    def _complete(self) -> None:
        while True:
            item = self._done.get()
            batch: list[Completed[T]] = []
            while item is not None:
                batch.append(item)
                try:
                    item = self._done.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    self.on_complete(batch)
                except Exception:
                    logger.exception("recording {} delivery outcomes failed", len(batch))
            if item is None:
                return
