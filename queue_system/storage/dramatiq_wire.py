"""Dramatiq's wire format, as our scripts write it: the one place that spells it.

Our Lua scripts enqueue Dramatiq messages themselves (the same HSET + RPUSH as Dramatiq's own
`enqueue`), so a task and its message are written in one atomic step. What they must agree on with
Dramatiq's RedisBroker and with our actors lives here; `storage/scripts.py` renders these values
into the Lua prelude, and the worker's actors take their names from here too.

Keys, under the broker's namespace `{prefix}:dramatiq`:
    {namespace}:{queue}        list  message ids, in order
    {namespace}:{queue}.msgs   hash  message id -> message JSON (lua/common.lua `dispatch`)
    {namespace}:{queue}.XQ     zset  dead-lettered message ids
And the consumer's own (dispatch.lua's names), which the worker's broker and our crash recovery
(the reconciler's dead-broker requeue) use:
    {namespace}:__acks__.{broker_id}.{queue}  set   what that broker's consumer fetched, unacked
    {namespace}:__heartbeats__                zset  broker id -> last seen (ms)
A delay queue (Dramatiq's own retries of an infrastructure error) is `{queue}.DQ`, with its own
ack sets.
"""

from __future__ import annotations

from queue_system.domain.queues import QUEUES

# The broker's namespace is `{prefix}:{NAMESPACE_SUFFIX}` (see storage/keys.py).
NAMESPACE_SUFFIX = "dramatiq"
# The actor of the `default` queue; the others are `{ACTOR}_{queue}`.
ACTOR = "run_task"
# Message ids are `{task_id}{SEPARATOR}{token}`: unique per dispatch, so a new token is a new message.
SEPARATOR = "#"
MESSAGES_SUFFIX = ".msgs"
DEAD_SUFFIX = ".XQ"
DELAY_SUFFIX = ".DQ"
ACKS = "__acks__"
HEARTBEATS = "__heartbeats__"
# Every queue a consumer fetches from, delay queues included: each has an ack set per broker.
CONSUMED = (*QUEUES, *(f"{q}{DELAY_SUFFIX}" for q in QUEUES))


def actor_name(queue: str) -> str:
    return ACTOR if queue == "default" else f"{ACTOR}_{queue}"


ACTORS: dict[str, str] = {queue: actor_name(queue) for queue in QUEUES}


def message_id(task_id: str, token: int | str) -> str:
    return f"{task_id}{SEPARATOR}{token}"


def messages(namespace: str, queue: str) -> str:
    """The hash of `queue`'s message bodies (message id -> JSON)."""
    return f"{namespace}:{queue}{MESSAGES_SUFFIX}"


def acks(namespace: str, broker_id: str, queue: str) -> str:
    """The set of messages the consumer of `queue` in broker `broker_id` fetched and has not acked."""
    return f"{namespace}:{ACKS}.{broker_id}.{queue}"


def heartbeats(namespace: str) -> str:
    return f"{namespace}:{HEARTBEATS}"
