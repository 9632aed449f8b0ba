"""A user-defined task kind, known only to the tests: loaded by the API and the worker through
TASK_MODULES=tests.user_kinds, as a user's own module would be."""

from __future__ import annotations

import msgspec

from queue_system.kinds import PermanentError, RunContext, backoff_policy, task_kind


class Shout(msgspec.Struct, forbid_unknown_fields=True):
    text: str
    times: int = 1


@task_kind("shout", payload=Shout, policy=backoff_policy)
def shout(payload: Shout, ctx: RunContext) -> dict[str, object]:
    if payload.times <= 0:
        raise PermanentError("times must be positive")
    return {"shouted": " ".join([payload.text.upper()] * payload.times), "attempt": ctx.attempt}
