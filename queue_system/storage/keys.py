"""Every Redis key queue_system uses, under one prefix (default `qs`).

{p}:task:{id}            hash    the task record (expires `retention` after it finishes)
{p}:task:{id}:history    list    the last MAX_HISTORY attempts, JSON each (same expiry)
{p}:task:{id}:payload    string  the payload, JSON (same expiry; kept out of the hash, see scripts.py)
{p}:idx:all              zset    id -> created_at ms, every live task
{p}:idx:status:{status}  zset    id -> created_at ms
{p}:idx:type:{type}      zset    id -> created_at ms
{p}:schedule             zset    id -> due ms (scheduled and retrying tasks)
{p}:leases               zset    id -> lease expiry ms (processing tasks)
{p}:expiry               zset    id -> purge-at ms (finished tasks); the sweeper owns them
{p}:dramatiq:{queue}     list    Dramatiq's queue (Dramatiq's RedisBroker, namespace {p}:dramatiq);
                                 its other keys ({queue}.msgs, __acks__.*, __heartbeats__, .DQ, .XQ)
                                 are Dramatiq's, written by our scripts the way dispatch.lua does
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "qs"

    @property
    def dramatiq_namespace(self) -> str:
        return f"{self.prefix}:dramatiq"

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

    def queue(self, name: str) -> str:
        return f"{self.dramatiq_namespace}:{name}"

    def delay_queue(self, name: str) -> str:
        return f"{self.dramatiq_namespace}:{name}.DQ"

    def dead_queue(self, name: str) -> str:
        return f"{self.dramatiq_namespace}:{name}.XQ"


# The Dramatiq actor that runs a task; the storage scripts write messages addressed to it.
RUN_ACTOR = "run_task"
