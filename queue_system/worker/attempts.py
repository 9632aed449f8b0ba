"""What happens to one attempt: the owner of a message from claim to ack, in one place.

The actor hands `Attempts.run(queue, task_id, token)` a message its consumer fetched:

1. claim (CLAIM, through a Redis outage): a stale or finished message is skipped, the consumer
   acks it as usual; a parked one likewise (its destination cannot take it: it waits, parked).
2. a kind whose attempt is one HTTP request (`TaskKind.request`, the webhook): the request is
   built on the actor thread and the `Attempt` is submitted to the delivery loop
   (`DeliveryLoop[Attempt]`, worker/delivery_loop.py), which sends it on its event loop; the thread
   returns at once. The message stays unacked in Redis; the consumer is told to skip its own ack.
   A submit the loop refuses (stopping, saturated) is given back: UNCLAIM undoes the claim, acks
   the message and dispatches a new one, so the task waits as if never fetched.
   Any other kind, or a request that cannot be built, runs on the thread (`TaskRunner.attempt`).
3. the loop's completion thread calls `_finished(batch)`: the policy decides (`finish_call`), and
   FINISH records each attempt, applies the decision and acks its message, one pipeline for the
   batch (`TaskRunner.record`).
4. the in-flight set (whose leases the reconciler renews) holds the attempt from its claim until
   it is recorded, given back, or abandoned at shutdown (then its lease recovers it).

The ack decision is made here, once per message: FINISH or UNCLAIM acked it, or FINISH will (the
loop owns it): `broker.skip_ack`; otherwise the consumer acks it (worker/broker.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from loguru import logger

from queue_system.domain.models import Task
from queue_system.kinds.registry import TaskKind
from queue_system.service.runner import InFlight, TaskRunner
from queue_system.storage.types import FinishCall, MessageAck, Skip
from queue_system.transports.async_http import AsyncHttpSender
from queue_system.transports.http import WebhookRequest
from queue_system.worker.broker import FinishAckingBroker
from queue_system.worker.delivery_loop import Admission, Completed, DeliveryLoop


@dataclass(frozen=True, slots=True, eq=False)
class Attempt:
    """A claimed task whose attempt is one HTTP request, on its way through the delivery loop."""

    task: Task
    kind: TaskKind
    request: WebhookRequest
    timeout_s: float
    started_at: int  # epoch ms of the claim
    ack: MessageAck | None


class Attempts:
    """The worker process's attempts: the delivery loop, the in-flight set, the ack decision."""

    def __init__(
        self,
        runner: TaskRunner,
        sender: AsyncHttpSender,
        broker: FinishAckingBroker | None,
        *,
        max_inflight: int,
        max_per_host: int,
        max_waiting_per_host: int | None = None,
    ) -> None:
        self.runner = runner
        self.broker = broker
        self.in_flight: InFlight = runner.in_flight
        self.loop: DeliveryLoop[Attempt] = DeliveryLoop(
            sender,
            self._finished,
            max_inflight=max_inflight,
            max_per_host=max_per_host,
            max_waiting_per_host=max_waiting_per_host,
        )

    # ---- lifecycle
    def start(self) -> None:
        self.loop.start()

    def refuse_new(self) -> None:
        """SIGTERM: no new delivery (a thread waiting for room gives its task back)."""
        self.runner.stopping.set()
        self.loop.refuse_new()

    def drain(self, grace_s: float) -> None:
        """Let the deliveries in flight finish (up to `grace_s`), give back those never started."""
        report = self.loop.stop(grace_s)
        for a in report.not_started:
            try:
                self.runner.give_back(a.task, a.ack)
            except redis.RedisError as exc:  # its lease recovers it
                logger.warning("could not give back {}: {}", a.task.id, exc)
            finally:
                self._leave(a.task)
        if report.unfinished:  # cancelled: outcome unknown; their leases expire and recover them
            logger.warning(
                "{} deliveries still running at the deadline were cancelled", len(report.unfinished)
            )
            for a in report.unfinished:
                self._leave(a.task)

    # ---- the actor threads' side
    def run(self, queue: str, task_id: str, token: int) -> None:
        """Run the message (task_id, token) that the consumer of `queue` fetched."""
        broker = self.broker
        ack = broker.ack_in_finish(queue, task_id, token) if broker is not None else None
        claim, now = self.runner.claim(task_id, token)
        if isinstance(claim, Skip):
            return  # the consumer acks it
        task = claim.task
        self.in_flight.add((task.id, task.token))
        ours = False  # whether a script of ours acked the message, or will
        try:
            ours = self._run(task, now, ack)
        finally:
            if ours and ack is not None and broker is not None:
                broker.skip_ack(ack)

    def _run(self, task: Task, now: int, ack: MessageAck | None) -> bool:
        kind = self.runner.kind(task)
        attempt = self._attempt(task, kind, now, ack) if kind is not None and kind.request else None
        if attempt is not None and self.loop.submit(attempt) is Admission.TAKEN:
            # In flight until `_finished` records it. Nothing on this path logs, so it skips
            # loguru's contextualize (~1% of a delivery's CPU); every other path logs with it.
            return True
        with logger.contextualize(task_id=task.id, attempt=task.attempts):
            try:
                if attempt is None:
                    return self.runner.attempt(task, kind, now, ack)
                return self.runner.give_back(task, ack)
            finally:
                self._leave(task)

    def _attempt(self, task: Task, kind: TaskKind, now: int, ack: MessageAck | None) -> Attempt | None:
        """The attempt's request, built here; None: it cannot be (the handler reports the same)."""
        assert kind.request is not None
        ctx = self.runner.context(task)
        try:
            request = kind.build_request(task.payload, ctx)
        except Exception:  # a bug in a request builder must not lose the task
            with logger.contextualize(task_id=task.id, attempt=task.attempts):
                logger.exception("building the request raised")
            return None
        if not isinstance(request, WebhookRequest):
            return None
        return Attempt(task, kind, request, ctx.timeout_s, now, ack)

    # ---- the loop's completion thread
    def _finished(self, batch: list[Completed[Attempt]]) -> None:
        """Record a batch of outcomes (one pipeline of FINISH, each acking its message). Whatever
        happens, the tasks leave the in-flight set: one not recorded is recovered by its lease."""
        try:
            calls: list[FinishCall] = []
            for c in batch:
                a = c.delivery
                calls.append(
                    self.runner.finish_call(a.task, a.kind, a.started_at, c.result, c.duration_ms, a.ack)
                )
            self.runner.record(calls)
        finally:
            for c in batch:
                self._leave(c.delivery.task)

    def _leave(self, task: Task) -> None:
        self.in_flight.discard((task.id, task.token))
