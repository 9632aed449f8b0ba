"""The transition table in the domain agrees with what the storage scripts accept."""

from __future__ import annotations

from queue_system.domain.models import CANCELLABLE, CLAIMABLE, TRANSITIONS, TaskStatus, can_transition
from queue_system.storage import scripts


def test_final_statuses_have_no_way_out_but_manual_retry() -> None:
    assert TRANSITIONS[TaskStatus.COMPLETED] == frozenset()
    for status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
        assert TRANSITIONS[status] == {TaskStatus.PENDING}


def test_claimable_statuses_lead_to_processing() -> None:
    for status in CLAIMABLE:
        assert can_transition(status, TaskStatus.PROCESSING)
        assert f"'{status.value}'" in scripts.CLAIM


def test_cancellable_statuses_lead_to_cancelled_in_domain_and_script() -> None:
    for status in CANCELLABLE:
        assert can_transition(status, TaskStatus.CANCELLED)
        assert f"'{status.value}'" in scripts.CANCEL
    assert not can_transition(TaskStatus.PROCESSING, TaskStatus.CANCELLED)


def test_processing_ends_in_the_statuses_finish_writes() -> None:
    assert TRANSITIONS[TaskStatus.PROCESSING] == {
        TaskStatus.COMPLETED,
        TaskStatus.RETRYING,
        TaskStatus.FAILED,
    }
    assert "f[1] ~= 'processing'" in scripts.FINISH
