"""A task as layout 1 stored it (for the upgrade tests)."""

from __future__ import annotations

import redis

OLD_TASK = "qs:task:"  # layout 1's names, spelled out: the data an older release left behind


def old_task(client: redis.Redis, task_id: str, *, payload: str, attempts: int = 0, ttl_ms: int = 0) -> None:
    """A task as layout 1 stored it: hash, `:history` list, `:payload` string, index entries."""
    record = {"id": task_id, "type": "echo", "queue": "default", "status": "pending", "attempts": attempts}
    record |= {"created_at": 1_000, "updated_at": 1_000, "token": 1, "fingerprint": "f"}
    client.hset(f"{OLD_TASK}{task_id}", mapping=record)
    client.set(f"{OLD_TASK}{task_id}:payload", f'"{payload}"')
    for n in range(1, attempts + 1):
        entry = f'{{"n": {n}, "started_at": 1000, "duration_ms": 1, "outcome": "transient"}}'
        client.rpush(f"{OLD_TASK}{task_id}:history", entry)
    client.zadd("qs:idx:all", {task_id: 1_000})
    client.zadd("qs:idx:status:pending", {task_id: 1_000})
    client.zadd("qs:idx:type:echo", {task_id: 1_000})
    if ttl_ms:
        for suffix in ("", ":payload", ":history"):
            client.pexpire(f"{OLD_TASK}{task_id}{suffix}", ttl_ms)
