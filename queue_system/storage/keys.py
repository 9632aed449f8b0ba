"""Every Redis key queue_system uses, under one prefix (default `qs`).

{p}:task:{id}            hash    the task record (expires `retention` after it finishes)
{p}:task:{id}:history    list    the last MAX_HISTORY attempts, JSON each (same expiry)
{p}:task:{id}:payload    string  the payload, JSON (same expiry; kept out of the hash: the hash's
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
{p}:dest:{d}:inflight    zset    id -> lease expiry ms: the destination's slots (a claimed task, or
                                 a released one on its way to its claim)
{p}:dest:{d}:parked      zset    id -> parked-at ms: tasks waiting for the destination
{p}:dests                zset    d -> last activity ms: the owner of the three keys above (the
                                 reconciler forgets a destination idle for 7 days with nothing
                                 parked or in flight)
{p}:dests:due            zset    d -> when the reconciler looks at it next (it has parked tasks)
{p}:authfail:{h}         hash    failed key checks of one client address (h: SHA-256 of it, 32 hex):
                                 fails, window_end, locked_until, strikes (storage/auth_failures.py);
                                 expires a day after its lock ends
{p}:stats:{minute}       hash    completed, failed, retried of that minute (epoch ms // 60000;
                                 attempts is their sum), for the dashboard; expires after 2 h
{p}:probe                string  readiness's write probe (SET with a 10 s expiry; storage/failures.py)
{p}:dramatiq:{queue}     list    Dramatiq's queue (Dramatiq's RedisBroker, namespace {p}:dramatiq);
                                 its other keys are Dramatiq's: storage/dramatiq_wire.py lists those
                                 our scripts write, worker/broker.py the consumer's own

The Lua scripts take their key names from this class (storage/scripts.py renders them), so each
name is spelled here only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from queue_system.storage import dramatiq_wire


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "qs"

    @property
    def dramatiq_namespace(self) -> str:
        return f"{self.prefix}:{dramatiq_wire.NAMESPACE_SUFFIX}"

    def task(self, task_id: str) -> str:
        return f"{self.prefix}:task:{task_id}"

    def history(self, task_id: str) -> str:
        return f"{self.prefix}:task:{task_id}:history"

    def payload(self, task_id: str) -> str:
        return f"{self.prefix}:task:{task_id}:payload"

    def index(self, status: str | None = None, type_: str | None = None) -> str:
        if status:
            return f"{self.prefix}:idx:status:{status}"
        if type_:
            return f"{self.prefix}:idx:type:{type_}"
        return f"{self.prefix}:idx:all"

    @property
    def schedule(self) -> str:
        return f"{self.prefix}:schedule"

    @property
    def leases(self) -> str:
        return f"{self.prefix}:leases"

    @property
    def expiry(self) -> str:
        return f"{self.prefix}:expiry"

    def dest(self, dest: str) -> str:
        return f"{self.prefix}:dest:{dest}"

    def dest_inflight(self, dest: str) -> str:
        return f"{self.prefix}:dest:{dest}:inflight"

    def dest_parked(self, dest: str) -> str:
        return f"{self.prefix}:dest:{dest}:parked"

    @property
    def dests(self) -> str:
        return f"{self.prefix}:dests"

    @property
    def dests_due(self) -> str:
        return f"{self.prefix}:dests:due"

    def stats_minute(self, minute: int | str) -> str:
        return f"{self.prefix}:stats:{minute}"

    @property
    def probe(self) -> str:
        return f"{self.prefix}:probe"

    def queue(self, name: str) -> str:
        return f"{self.dramatiq_namespace}:{name}"

    def messages(self, queue: str) -> str:
        return f"{self.queue(queue)}{dramatiq_wire.MESSAGES_SUFFIX}"

    def dead_queue(self, name: str) -> str:
        return f"{self.queue(name)}{dramatiq_wire.DEAD_SUFFIX}"

    def acks(self, broker_id: str, queue: str) -> str:
        """Dramatiq's set of the messages a broker's consumer of `queue` fetched and has not acked."""
        return dramatiq_wire.acks(self.dramatiq_namespace, broker_id, queue)

    @property
    def heartbeats(self) -> str:
        """Dramatiq's zset: broker id -> last seen (ms); the reconciler's heartbeat writes it too."""
        return dramatiq_wire.heartbeats(self.dramatiq_namespace)

    def auth_failures(self, address: str) -> str:
        """Failed key checks of a client address; hashed, so no address can spell another key."""
        return f"{self.prefix}:authfail:{hashlib.sha256(address.encode()).hexdigest()[:32]}"
