"""Every Redis key queue_system uses, under one prefix (default `qs`): layout 2.

A key built from outside data (a task id, a destination, a session id) is `{p}:{family}:{value}`:
the record type comes before the value, so no value can spell another record's key, whatever
it contains (`:` included). No family's head is a prefix of another's, and no fixed key starts
with a family's head, so `Keys.parse` undoes every key: (family, value) -> key is one to one.

{p}:task:{id}            hash    the task record (expires `retention` after it finishes)
{p}:history:{id}         list    the last MAX_HISTORY attempts, JSON each (same expiry)
{p}:payload:{id}         string  the payload, JSON (same expiry; kept out of the hash: the hash's
                                 values stay small and Redis keeps it as a compact listpack)
{p}:idx:all              zset    id -> created_at ms, every live task
{p}:idx:status:{status}  zset    id -> created_at ms
{p}:idx:type:{type}      zset    id -> created_at ms
{p}:schedule             zset    id -> due ms (scheduled and retrying tasks)
{p}:leases               zset    id -> lease expiry ms (processing tasks)
{p}:expiry               zset    id -> purge-at ms (finished tasks); the sweeper owns them
{p}:dest:{d}             hash    a webhook destination `scheme://host:port`: its circuit breaker
                                 (state, failures, cooldown_ms, open_until, probe, last_error,
                                 updated_at); absent = closed, no failures
{p}:inflight:{d}         zset    id -> lease expiry ms: the destination's slots (a claimed task, or
                                 a released one on its way to its claim)
{p}:parked:{d}           zset    id -> parked-at ms: tasks waiting for the destination
{p}:dests                zset    d -> last activity ms: the owner of the three keys above (the
                                 reconciler forgets a destination idle for 7 days with nothing
                                 parked or in flight)
{p}:dests:due            zset    d -> when the reconciler looks at it next (it has parked tasks)
{p}:endpoint:{e}         hash    a webhook endpoint (domain/destinations.py: the URL without its query,
                                 or `scheme://host:port#key`): its own circuit breaker, fields as
                                 {p}:dest:{d}'s; absent = closed, no failures
{p}:ep-inflight:{e}      zset    id -> lease expiry ms: the endpoint's slots (within its host's)
{p}:ep-parked:{e}        zset    id -> parked-at ms: tasks waiting for the endpoint itself
{p}:endpoints            zset    e -> last activity ms: the owner of the three keys above (an
                                 endpoint left with none of them is dropped when its attempt
                                 finishes; the reconciler forgets one idle for an hour with
                                 nothing parked or in flight)
{p}:endpoints:due        zset    e -> when the reconciler looks at it next (it has parked tasks)
{p}:authfail:{h}         hash    failed key checks of one client address (h: SHA-256 of it, 32 hex):
                                 fails, window_end, locked_until, strikes (storage/auth_failures.py);
                                 expires a day after its lock ends
{p}:stats:{minute}       hash    completed, failed, retried of that minute (epoch ms // 60000;
                                 attempts is their sum), for the dashboard; expires after 2 h
{p}:session:{id}         hash    a dashboard session: role, csrf, created_at (storage/sessions.py;
                                 the cookie naming it: api/dashboard/auth.py); expires 8 h after
                                 its last use
{p}:ratelimit:{digest}   hash    a token bucket (storage/rate_limit.py; the digest of what it
                                 limits, never the key itself); expires when full again
{p}:sched:{id}           hash    a schedule (storage/schedules.py): its template, timing, paused,
                                 next_run_at, last_run_at; owned by {p}:scheds
{p}:sched-runs:{id}      list    a schedule's last task ids, newest first (capped; owned by {p}:scheds)
{p}:scheds               zset    schedule id -> created ms: every schedule (the owner of the two above)
{p}:scheds:due           zset    schedule id -> next run ms (schedules not paused)
{p}:queues:paused        hash    queue -> paused-at ms: the paused queues (storage/queues.py); a
                                 queue is one of domain/queues.py QUEUES, so it holds at most those
{p}:held:{queue}         zset    id -> created_at ms: the tasks a paused queue's claims held (owned
                                 by the queue: its resume, or the reconciler after it, empties it)
{p}:mailbox              list    the development mailbox (storage/mailbox.py; capped, expiring)
{p}:op:{id}              hash    a bulk operation (storage/operations.py): action, filter, state,
                                 cursor, counters, lease; expires OPERATION_RETENTION after it ends;
                                 owned by {p}:ops
{p}:ops                  zset    operation id -> created ms: every operation (the owner of the above;
                                 an entry whose hash expired is dropped by the next create)
{p}:ops:running          zset    operation id -> created ms: the running ones, which workers step
{p}:mailbox              list    the development mailbox (storage/mailbox.py)
{p}:inbox:{name}         list    one development inbox: the requests it received, JSON each, newest
                                 first (storage/inbox.py; capped, expiring)
{p}:inboxes              zset    inbox name -> last request ms: the inboxes there are (capped, expiring)
{p}:probe                string  readiness's write probe (SET with a 10 s expiry; storage/failures.py)
{p}:layout               string  the layout version of this Redis (LAYOUT_VERSION; storage/layout.py)
{p}:layout:lock          string  held (with an expiry) by the one process upgrading the layout
{p}:dramatiq:{queue}     list    Dramatiq's queue (Dramatiq's RedisBroker, namespace {p}:dramatiq);
                                 its other keys are Dramatiq's: storage/dramatiq_wire.py lists those
                                 our scripts write, worker/broker.py the consumer's own. Dramatiq
                                 spells its keys `{queue}.msgs`, `{queue}.DQ`, ...: a queue is one
                                 of dramatiq_wire.QUEUES, never a name from outside (422)

Layout 1 (before `{p}:layout` existed) kept `{p}:task:{id}:history`, `{p}:task:{id}:payload`,
`{p}:dest:{d}:inflight` and `{p}:dest:{d}:parked`, where id `a:payload`'s record was id `a`'s
payload key. `Layout1` names them for the upgrade (storage/layout.py) and nothing else.

The Lua scripts take their key names from this class (storage/scripts.py renders them), and the
Python stores call its methods, so each name is spelled here only (Dramatiq's own key shapes:
dramatiq_wire.py, which the methods at the end use). tests/test_keys.py checks that every family
and fixed key is listed above and in docs/architecture/storage.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from queue_system.storage import dramatiq_wire

LAYOUT_VERSION = 2

# family -> its head: what comes between `{p}:` and the value.
FAMILIES: dict[str, str] = {
    "task": "task:",
    "history": "history:",
    "payload": "payload:",
    "status_index": "idx:status:",
    "type_index": "idx:type:",
    "dest": "dest:",
    "inflight": "inflight:",
    "parked": "parked:",
    "stats": "stats:",
    "session": "session:",
    "ratelimit": "ratelimit:",
    "authfail": "authfail:",
    "inbox": "inbox:",
    "sched": "sched:",
    "sched_runs": "sched-runs:",
    "op": "op:",
    "endpoint": "endpoint:",
    "ep_inflight": "ep-inflight:",
    "ep_parked": "ep-parked:",
    "held": "held:",
    "dramatiq": f"{dramatiq_wire.NAMESPACE_SUFFIX}:",  # Dramatiq's own namespace
}
# name -> the key after `{p}:`.
FIXED: dict[str, str] = {
    "all_index": "idx:all",
    "schedule": "schedule",
    "leases": "leases",
    "expiry": "expiry",
    "dests": "dests",
    "dests_due": "dests:due",
    "endpoints": "endpoints",
    "endpoints_due": "endpoints:due",
    "scheds": "scheds",
    "scheds_due": "scheds:due",
    "paused_queues": "queues:paused",
    "ops": "ops",
    "ops_running": "ops:running",
    "mailbox": "mailbox",
    "inboxes": "inboxes",
    "probe": "probe",
    "layout": "layout",
    "layout_lock": "layout:lock",
}


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "qs"

    def _of(self, family: str, value: str) -> str:
        return f"{self.prefix}:{FAMILIES[family]}{value}"

    def _fixed(self, name: str) -> str:
        return f"{self.prefix}:{FIXED[name]}"

    def parse(self, key: str) -> tuple[str, str] | None:
        """-> (family, value) of one of our keys, (fixed name, "") of a fixed key, or None."""
        head = f"{self.prefix}:"
        if not key.startswith(head):
            return None
        rest = key[len(head) :]
        for name, fixed in FIXED.items():
            if rest == fixed:
                return name, ""
        for family, start in FAMILIES.items():
            if rest.startswith(start):
                return family, rest[len(start) :]
        return None

    @property
    def dramatiq_namespace(self) -> str:
        return f"{self.prefix}:{dramatiq_wire.NAMESPACE_SUFFIX}"

    def task(self, task_id: str) -> str:
        return self._of("task", task_id)

    def history(self, task_id: str) -> str:
        return self._of("history", task_id)

    def payload(self, task_id: str) -> str:
        return self._of("payload", task_id)

    def index(self, status: str | None = None, type_: str | None = None) -> str:
        if status:
            return self._of("status_index", status)
        if type_:
            return self._of("type_index", type_)
        return self._fixed("all_index")

    @property
    def schedule(self) -> str:
        return self._fixed("schedule")

    @property
    def leases(self) -> str:
        return self._fixed("leases")

    @property
    def expiry(self) -> str:
        return self._fixed("expiry")

    def dest(self, dest: str) -> str:
        return self._of("dest", dest)

    def dest_inflight(self, dest: str) -> str:
        return self._of("inflight", dest)

    def dest_parked(self, dest: str) -> str:
        return self._of("parked", dest)

    @property
    def dests(self) -> str:
        return self._fixed("dests")

    @property
    def dests_due(self) -> str:
        return self._fixed("dests_due")

    def endpoint(self, endpoint: str) -> str:
        return self._of("endpoint", endpoint)

    def endpoint_inflight(self, endpoint: str) -> str:
        return self._of("ep_inflight", endpoint)

    def endpoint_parked(self, endpoint: str) -> str:
        return self._of("ep_parked", endpoint)

    @property
    def endpoints(self) -> str:
        return self._fixed("endpoints")

    @property
    def endpoints_due(self) -> str:
        return self._fixed("endpoints_due")

    def stats_minute(self, minute: int | str) -> str:
        return self._of("stats", str(minute))

    def session(self, session_id: str) -> str:
        return self._of("session", session_id)

    def rate_bucket(self, digest: str) -> str:
        return self._of("ratelimit", digest)

    def auth_failures(self, address: str) -> str:
        """Failed key checks of a client address; hashed, so no address can spell another key."""
        return self._of("authfail", hashlib.sha256(address.encode()).hexdigest()[:32])

    def sched(self, schedule_id: str) -> str:
        return self._of("sched", schedule_id)

    def sched_runs(self, schedule_id: str) -> str:
        return self._of("sched_runs", schedule_id)

    @property
    def scheds(self) -> str:
        return self._fixed("scheds")

    @property
    def scheds_due(self) -> str:
        return self._fixed("scheds_due")

    def op(self, operation_id: str) -> str:
        return self._of("op", operation_id)

    @property
    def ops(self) -> str:
        return self._fixed("ops")

    @property
    def ops_running(self) -> str:
        return self._fixed("ops_running")

    @property
    def paused_queues(self) -> str:
        return self._fixed("paused_queues")

    def held(self, queue: str) -> str:
        return self._of("held", queue)

    @property
    def mailbox(self) -> str:
        return self._fixed("mailbox")

    def inbox(self, name: str) -> str:
        return self._of("inbox", name)

    @property
    def inboxes(self) -> str:
        return self._fixed("inboxes")

    @property
    def probe(self) -> str:
        return self._fixed("probe")

    @property
    def layout(self) -> str:
        return self._fixed("layout")

    @property
    def layout_lock(self) -> str:
        return self._fixed("layout_lock")

    def queue(self, name: str) -> str:
        return f"{self.dramatiq_namespace}:{name}"

    def messages(self, queue: str) -> str:
        return dramatiq_wire.messages(self.dramatiq_namespace, queue)

    def dead_queue(self, name: str) -> str:
        return f"{self.queue(name)}{dramatiq_wire.DEAD_SUFFIX}"

    def acks(self, broker_id: str, queue: str) -> str:
        """Dramatiq's set of the messages a broker's consumer of `queue` fetched and has not acked."""
        return dramatiq_wire.acks(self.dramatiq_namespace, broker_id, queue)

    @property
    def heartbeats(self) -> str:
        """Dramatiq's zset: broker id -> last seen (ms); the reconciler's heartbeat writes it too."""
        return dramatiq_wire.heartbeats(self.dramatiq_namespace)


@dataclass(frozen=True, slots=True)
class Layout1:
    """The names layout 1 gave what layout 2 moved: read by the upgrade only."""

    prefix: str = "qs"

    @property
    def task_head(self) -> str:
        return f"{self.prefix}:task:"

    @property
    def dest_head(self) -> str:
        return f"{self.prefix}:dest:"

    def history(self, task_id: str) -> str:
        return f"{self.task_head}{task_id}:history"

    def payload(self, task_id: str) -> str:
        return f"{self.task_head}{task_id}:payload"

    def dest_inflight(self, dest: str) -> str:
        return f"{self.dest_head}{dest}:inflight"

    def dest_parked(self, dest: str) -> str:
        return f"{self.dest_head}{dest}:parked"
