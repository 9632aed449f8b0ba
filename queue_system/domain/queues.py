"""The queues a task may name (product vocabulary: `queue` in a submission, the dashboard's filter,
the worker's `--queues`). Each is one Dramatiq queue with one actor (storage/dramatiq_wire.py);
Dramatiq orders a worker's work by actor priority.

A queue can be paused (POST /api/v1/queues/{name}/pause): its tasks stay waiting, held by the
claim (storage/lua/queues.lua), until it is resumed; `QueueState` is what the API shows of one."""

from __future__ import annotations

from dataclasses import dataclass

QUEUES = ("default", "priority")


@dataclass(frozen=True, slots=True)
class QueueState:
    """One queue as GET /api/v1/queues shows it. `queued`: messages in its Dramatiq list (waiting
    for a worker, or for a paused queue's claim to hold them); `held`: tasks a pause holds; the
    depth is their sum. `oldest_created_at`: the oldest waiting task's creation (epoch ms) among
    the held ones and the head of the list, None when none waits."""

    name: str
    paused_at: int | None
    queued: int
    held: int
    oldest_created_at: int | None

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    @property
    def depth(self) -> int:
        return self.queued + self.held


@dataclass(frozen=True, slots=True)
class Resumed:
    """What a resume did: `was_paused` False for a queue that ran already (idempotent);
    `released`: held tasks dispatched again, oldest first."""

    was_paused: bool
    released: int
