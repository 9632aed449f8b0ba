"""What the worker's runner and reconciler report as they go (metrics): a small protocol, so the
service layer stays free of any metrics library; `worker/metrics.py` implements it."""

from __future__ import annotations

from typing import Protocol

from queue_system.domain.models import Outcome, TaskStatus


class Observer(Protocol):
    def attempt_finished(
        self,
        task_type: str,
        outcome: Outcome,
        status: TaskStatus,
        duration_s: float,
        status_code: int | None,
    ) -> None:
        """One attempt recorded: how it ended, the task's status after it, the HTTP status if any."""

    def recovered(self, count: int) -> None:
        """`count` attempts whose worker was lost were recovered (their lease expired)."""

    def schedule_fired(self, timing: str, created: int, late_s: float) -> None:
        """A schedule fired: `timing` is `cron` or `every`, `created` the tasks it created, `late_s`
        how far its newest tick was behind when it fired."""

    def schedule_skipped(self, timing: str, ticks: int) -> None:
        """A firing of an `overlap: skip` schedule skipped `ticks` ticks (its previous task unfinished)."""

    def bulk_acted(self, action: str, count: int) -> None:
        """A bulk operation's step acted on `count` tasks (done, skipped or failed) with `action`."""


class NullObserver:
    """Observes nothing: the default, and what tests of the service layer use."""

    def attempt_finished(
        self,
        task_type: str,
        outcome: Outcome,
        status: TaskStatus,
        duration_s: float,
        status_code: int | None,
    ) -> None:
        return

    def recovered(self, count: int) -> None:
        return

    def schedule_fired(self, timing: str, created: int, late_s: float) -> None:
        return

    def schedule_skipped(self, timing: str, ticks: int) -> None:
        return

    def bulk_acted(self, action: str, count: int) -> None:
        return
