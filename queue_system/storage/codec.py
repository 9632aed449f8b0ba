"""Between domain objects and Redis hash fields / script arguments. Pure functions."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from queue_system.domain.destinations import Waiting, WaitLevel, WaitReason
from queue_system.domain.models import Attempt, Outcome, Task, TaskStatus
from queue_system.domain.policy import decode_policy


def _fallback(value: Any) -> str:
    # A handler's result of a type JSON cannot hold is kept as its text rather than lost.
    return str(value)


_encoder = msgspec.json.Encoder(enc_hook=_fallback)
_decoder = msgspec.json.Decoder()


def dumps(value: Any) -> str:
    return _encoder.encode(value).decode()


def loads(text: str) -> Any:
    return _decoder.decode(text)


T = TypeVar("T")


def decode_each(raw: list[Any], kind: type[T]) -> list[T]:
    """The items of a Redis list of JSON documents as `kind`, those that do not decode left out: a
    page shows what it can rather than fail on one foreign entry."""
    out: list[T] = []
    for item in raw:
        try:
            out.append(msgspec.json.decode(item, type=kind))
        except msgspec.DecodeError:
            continue
    return out


# A dict lookup is several times cheaper than TaskStatus(value), and the claim decodes a task per run.
_STATUSES = {status.value: status for status in TaskStatus}


def _int(value: str | None) -> int | None:
    return int(value) if value else None


# The hash fields an attempt reads, in the order the claim script returns their values (it reads
# them with one HMGET: lua/claim.lua, whose prelude storage/scripts.py renders from this tuple).
# Not the outcome of earlier attempts (result, last_error, next_attempt_at, completed_at) nor the
# parking (parked, parked_at): a claimed task's Task leaves those at their defaults.
CLAIMED_FIELDS = (
    "id",
    "type",
    "status",
    "queue",
    "attempts",
    "created_at",
    "updated_at",
    "retry",
    "timeout_ms",
    "token",
    "retried_at",
    "attempt_base",
    "trigger",
    "dest",
    "ep",
)


def claimed_task(values: list[str | None], payload: str) -> Task:
    """The task the claim script returned: its CLAIMED_FIELDS values (None: absent), by name."""
    fields = {name: value for name, value in zip(CLAIMED_FIELDS, values, strict=True) if value is not None}
    return task_from_hash(fields, None, payload)


def task_from_hash(
    fields: dict[str, str], history: list[str] | None = None, payload: str | None = None
) -> Task:
    """A task from its hash, its attempt history and its payload (a key of its own): the one
    decoder of a task, for reads and for the claim script's reply (`claimed_task`) alike."""
    retry = fields.get("retry")
    dest = fields.get("dest")
    parked = fields.get("parked")
    ep = fields.get("ep")  # the endpoint after its host (lua/destinations.lua); none: stored before
    endpoint = dest + ep if dest and ep is not None else None
    waiting = None
    if parked and dest:  # (parked by a version without levels: under its host)
        level = WaitLevel(fields.get("parked_level", WaitLevel.HOST))
        since = int(fields.get("parked_at", 0))
        waiting = Waiting(dest, WaitReason(parked), since, level=level, endpoint=endpoint or dest)
    return Task(
        id=fields["id"],
        type=fields["type"],
        payload=loads(payload) if payload is not None else None,
        status=_STATUSES[fields["status"]],
        queue=fields["queue"],
        attempts=int(fields.get("attempts", 0)),
        created_at=int(fields["created_at"]),
        updated_at=int(fields["updated_at"]),
        retry=decode_policy(retry) if retry else None,
        timeout_ms=_int(fields.get("timeout_ms")),
        token=int(fields.get("token", 0)),
        result=loads(fields["result"]) if "result" in fields else None,
        last_error=fields.get("last_error"),
        next_attempt_at=_int(fields.get("next_attempt_at")),
        completed_at=_int(fields.get("completed_at")),
        retried_at=_int(fields.get("retried_at")),
        attempt_base=int(fields.get("attempt_base", 0)),
        trigger=fields.get("trigger", "auto"),
        history=[attempt_from_json(h) for h in history or ()],
        dest=dest,
        endpoint=endpoint,
        waiting=waiting,
        schedule_id=fields.get("schedule"),
    )


def attempt_to_json(attempt: Attempt) -> str:
    data = {
        "n": attempt.n,
        "started_at": attempt.started_at,
        "duration_ms": attempt.duration_ms,
        "outcome": attempt.outcome.value,
        "trigger": attempt.trigger,
    }
    if attempt.status_code is not None:
        data["status_code"] = attempt.status_code
    if attempt.error is not None:
        data["error"] = attempt.error
    if attempt.response_body is not None:
        data["response_body"] = attempt.response_body
    if attempt.detail is not None:
        data["detail"] = attempt.detail
    return dumps(data)


def attempt_from_json(text: str) -> Attempt:
    d = loads(text)
    return Attempt(
        n=int(d["n"]),
        started_at=int(d["started_at"]),
        duration_ms=int(d["duration_ms"]),
        outcome=Outcome(d["outcome"]),
        status_code=d.get("status_code"),
        error=d.get("error"),
        response_body=d.get("response_body"),
        trigger=d.get("trigger", "auto"),
        detail=d.get("detail"),
    )


def flat_pairs(fields: dict[str, str]) -> list[str]:
    out: list[str] = []
    for name, value in fields.items():
        out += [name, value]
    return out
