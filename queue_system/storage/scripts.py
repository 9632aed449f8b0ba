"""The Lua scripts: each state change of a task is one atomic script (storage/lua/*.lua).

Each file's header names its KEYS and ARGV and what it returns. A script's source is a prelude
rendered here from `Keys` and `dramatiq_wire` (so a key name or a Dramatiq constant is spelled
in one place), then lua/common.lua (the functions the scripts share), then the script itself.
Every script gets KEYS[1] = the key prefix.

Dispatching a task writes a Dramatiq message straight into Dramatiq's Redis queue (the same two
commands as Dramatiq's own `enqueue`), so creating a task and enqueueing it is one atomic round
trip: a task is never stored without its message, nor queued without its record.
"""

from __future__ import annotations

import re
from importlib.resources import files

from queue_system.storage import codec, dramatiq_wire
from queue_system.storage.keys import Keys


def _lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _lua_concat(template: str) -> str:
    """'{P}:task:{id}' -> "P .. ':task:' .. id": a key template as a Lua expression."""
    # re.split puts the captured names at the odd positions.
    parts = re.split(r"\{(\w+)\}", template)
    exprs = [part if i % 2 else _lua_string(part) for i, part in enumerate(parts) if part]
    return " .. ".join(exprs)


def render_prelude() -> str:
    k = Keys(prefix="{P}")
    helpers = {
        "task_key(id)": k.task("{id}"),
        "history_key(id)": k.history("{id}"),
        "payload_key(id)": k.payload("{id}"),
        "status_index(status)": k.index(status="{status}"),
        "type_index(task_type)": k.index(type_="{task_type}"),
        "queue_key(queue)": k.queue("{queue}"),
        "messages_key(queue)": k.messages("{queue}"),
        "message_id(id, token)": dramatiq_wire.message_id("{id}", "{token}"),
        "acks_key(broker, queue)": k.acks("{broker}", "{queue}"),
        "dest_key(d)": k.dest("{d}"),
        "inflight_key(d)": k.dest_inflight("{d}"),
        "parked_key(d)": k.dest_parked("{d}"),
        "endpoint_key(e)": k.endpoint("{e}"),
        "ep_inflight_key(e)": k.endpoint_inflight("{e}"),
        "ep_parked_key(e)": k.endpoint_parked("{e}"),
        "stats_key(minute)": k.stats_minute("{minute}"),
        "schedule_key(sid)": k.sched("{sid}"),
        "schedule_runs_key(sid)": k.sched_runs("{sid}"),
        "held_key(queue)": k.held("{queue}"),
        "op_key(oid)": k.op("{oid}"),
    }
    constants = {
        "ALL_INDEX": k.index(),
        "SCHEDULE": k.schedule,
        "LEASES": k.leases,
        "EXPIRY": k.expiry,
        "HEARTBEATS": k.heartbeats,
        "DESTS": k.dests,
        "DESTS_DUE": k.dests_due,
        "ENDPOINTS": k.endpoints,
        "ENDPOINTS_DUE": k.endpoints_due,
        "LAYOUT_LOCK": k.layout_lock,
        "SCHEDULES": k.scheds,
        "SCHEDULES_DUE": k.scheds_due,
        "PAUSED": k.paused_queues,
        "OPERATIONS": k.ops,
        "OPERATIONS_RUNNING": k.ops_running,
    }
    actors = ", ".join(f"[{_lua_string(q)}] = {_lua_string(a)}" for q, a in dramatiq_wire.ACTORS.items())
    lines = ["-- Rendered by storage/scripts.py from storage/keys.py and storage/dramatiq_wire.py."]
    lines.append("local P = KEYS[1]")
    lines += [f"local function {sig} return {_lua_concat(t)} end" for sig, t in helpers.items()]
    lines += [f"local {name} = {_lua_concat(t)}" for name, t in constants.items()]
    lines.append(f"local ACTORS = {{{actors}}}")
    lines.append(f"local MESSAGE_SEPARATOR = {_lua_string(dramatiq_wire.SEPARATOR)}")
    # The claim reads what an attempt needs with one HMGET (codec.CLAIMED_FIELDS, in order) and
    # names each value by its position: CLAIMED_STATUS = 3 is the value of `status`.
    claimed = ", ".join(_lua_string(name) for name in codec.CLAIMED_FIELDS)
    lines.append(f"local function read_claimed(key) return redis.call('HMGET', key, {claimed}) end")
    lines += [f"local CLAIMED_{name.upper()} = {i}" for i, name in enumerate(codec.CLAIMED_FIELDS, 1)]
    return "\n".join(lines) + "\n"


def _load(name: str) -> str:
    return (files("queue_system.storage") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


# A top-level definition of the prelude or common.lua (with the comment lines above it).
_DEFINITION = re.compile(r"^(?:--[^\n]*\n)*local (?:function )?(\w+)[^\n]*\n(?:[ \t}][^\n]*\n|end\n)*", re.M)


_COMMENT = re.compile(r"--[^\n]*")


def _used_definitions(library: str, body: str) -> str:
    """The definitions of `library` that `body` uses, directly or through each other, in order.

    Redis runs a script's whole chunk on every call, so each helper defined costs a closure per
    call; the hot scripts (claim, finish) use a few of them. Only code counts as a use: a name in
    a comment (finish.lua mentions Dramatiq's dispatch.lua) pulls nothing in."""
    defs = [(m.group(1), m.group(0)) for m in _DEFINITION.finditer(library)]
    used = {"P"}
    code = _COMMENT.sub("", body)
    changed = True
    while changed:
        changed = False
        for name, source in defs:
            if name not in used and re.search(rf"\b{name}\b", code):
                used.add(name)
                code += _COMMENT.sub("", source)
                changed = True
    return "".join(source for name, source in defs if name in used)


_LIBRARY = render_prelude() + _load("common") + _load("destinations") + _load("queues") + _load("actions")


def _script(name: str) -> str:
    body = _load(name)
    return _used_definitions(_LIBRARY, body) + body


CREATE = _script("create")
CLAIM = _script("claim")
FINISH = _script("finish")
PROMOTE = _script("promote")
RECLAIM = _script("reclaim")
RENEW = _script("renew")
CANCEL = _script("cancel")
RETRY = _script("retry")
DELETE = _script("delete")
REDISPATCH = _script("redispatch")
SWEEP = _script("sweep")
UNCLAIM = _script("unclaim")
REQUEUE_DEAD = _script("requeue_dead")
PAGE = _script("page")
WAKE = _script("wake")
# Schedules (storage/schedules.py).
FIRE = _script("fire")
SCHEDULE_SAVE = _script("schedule_save")
SCHEDULE_DELETE = _script("schedule_delete")
# Bulk operations (storage/operations.py).
OPERATION_CREATE = _script("operation_create")
OPERATION_STEP = _script("operation_step")
OPERATION_END = _script("operation_end")
DESTINATIONS = _script("dest_list")
# Queue pause and resume (storage/queues.py).
QUEUE_PAUSE = _script("queue_pause")
QUEUE_RESUME = _script("queue_resume")
QUEUE_RELEASE = _script("queue_release")
QUEUE_STATS = _script("queue_stats")
# The layout upgrade's (storage/layout.py).
RELAYOUT = _script("relayout")
DROP_LOST = _script("drop_lost")
LAYOUT_LOCK = _script("layout_lock")
