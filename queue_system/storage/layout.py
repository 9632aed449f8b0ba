"""The key layout of a Redis (storage/keys.py): its version in `Keys.layout`, checked at every start.

`ensure_layout` runs before the API serves, before the worker consumes, and in `make run`'s launcher:
- the version is LAYOUT_VERSION: nothing to do (one GET);
- no version and no task or destination: a new Redis, the version is set;
- no version but tasks or destinations (layout 1, before versions), or an older version: the
  layout is upgraded once, by the one process holding `Keys.layout_lock` (SET NX with an expiry,
  renewed after each batch); the others wait, bounded, for the version, and one of them takes over
  if the holder dies (its lock expires). The upgrade SCANs every key once and moves each record's
  keys (a task's history and payload, a destination's slots and parked set) to their new names in
  one script per batch of records (lua/relayout.lua); then it forgets the ids whose record layout
  1 had lost to a colliding id (lua/drop_lost.lua), and sets the version last. Interrupted, it
  starts again from the top: a moved key is not found under its old name again.
- a newer version, or one that is not a number: LayoutError, the process does not start.

Stop processes of an older release before starting this one: they would keep writing layout 1 names.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis

from queue_system.domain.models import TaskStatus
from queue_system.errors import LayoutError as LayoutError  # (re-exported: the entry points catch it)
from queue_system.storage import scripts
from queue_system.storage.connection import RedisTarget, sync_client
from queue_system.storage.keys import LAYOUT_VERSION, Keys, Layout1

LOCK_TTL_MS = 30_000  # a dead upgrader's lock frees itself this long after its last batch
BATCH = 500  # records per script (and keys per SCAN step): each script stays a few milliseconds
WAIT_S = 120.0  # how long a process waits for another one's upgrade
POLL_S = 0.2


class LayoutAction(StrEnum):
    CURRENT = "current"  # the version was LAYOUT_VERSION already
    INITIALISED = "initialised"  # a Redis without our data: the version was set
    UPGRADED = "upgraded"  # this process moved the keys
    WAITED = "waited"  # another process upgraded it while this one waited


@dataclass(frozen=True, slots=True)
class LayoutReport:
    action: LayoutAction
    from_version: int | None = None  # the version found (None: none, layout 1)
    moved: int = 0  # keys renamed
    dropped: int = 0  # ids forgotten: records layout 1 had lost to a colliding id

    def summary(self) -> str:
        """One line for the start-up log."""
        if self.action is LayoutAction.UPGRADED:
            found = "no version (layout 1)" if self.from_version is None else f"layout {self.from_version}"
            return (
                f"key layout upgraded to {LAYOUT_VERSION} from {found}: {self.moved} keys moved, "
                f"{self.dropped} ids forgotten whose record a colliding id had overwritten"
            )
        return f"key layout {LAYOUT_VERSION} ({self.action.value})"


def read_version(client: redis.Redis, keys: Keys) -> int | None:
    """The stored version (None: none), or LayoutError if this release cannot use it."""
    raw: Any = client.get(keys.layout)
    if raw is None:
        return None
    text = _text(raw)
    if not text.isdigit():
        raise LayoutError(f"{keys.layout} is {text!r}, not a layout version: is this Redis queue_system's?")
    version = int(text)
    if version > LAYOUT_VERSION:
        raise LayoutError(
            f"this Redis holds key layout {version}, newer than this release of queue_system knows "
            f"({LAYOUT_VERSION}): run the newer release, or point REDIS_URL at another Redis"
        )
    return version


def ensure_layout(
    client: redis.Redis,
    keys: Keys | None = None,
    *,
    wait_s: float = WAIT_S,
    batch: int = BATCH,
    sleep: Callable[[float], None] = time.sleep,
) -> LayoutReport:
    """Bring the Redis to LAYOUT_VERSION (see the module's docstring) -> what was done."""
    k = keys or Keys()
    deadline = time.monotonic() + wait_s
    waited = False
    while True:
        version = read_version(client, k)
        if version == LAYOUT_VERSION:
            return LayoutReport(LayoutAction.WAITED if waited else LayoutAction.CURRENT, version)
        token = uuid.uuid4().hex
        if client.set(k.layout_lock, token, nx=True, px=LOCK_TTL_MS):
            try:
                return _under_lock(client, k, token, batch)
            finally:
                client.register_script(scripts.LAYOUT_LOCK)(keys=[k.prefix], args=[token, 0])
        if time.monotonic() >= deadline:
            raise LayoutError(
                f"another process has been upgrading the key layout for over {wait_s:.0f} s "
                f"({k.layout_lock} is held): start again when it is done"
            )
        waited = True
        sleep(POLL_S)


def _under_lock(client: redis.Redis, keys: Keys, token: str, batch: int) -> LayoutReport:
    version = read_version(client, keys)  # again: another process may have finished meanwhile
    if version == LAYOUT_VERSION:
        return LayoutReport(LayoutAction.WAITED, version)
    if version is None and not client.exists(keys.index(), keys.dests, keys.schedule):
        client.set(keys.layout, LAYOUT_VERSION)
        return LayoutReport(LayoutAction.INITIALISED)
    upgrade = _Upgrade(client, keys, token)
    moved = upgrade.move(batch)
    dropped = upgrade.drop_lost(batch)
    client.set(keys.layout, LAYOUT_VERSION)
    return LayoutReport(LayoutAction.UPGRADED, version, moved, dropped)


class _Upgrade:
    """Layout 1 -> 2, under the lock `token`."""

    def __init__(self, client: redis.Redis, keys: Keys, token: str) -> None:
        self.client = client
        self.keys = keys
        self.old = Layout1(keys.prefix)
        self.token = token
        self._relayout = client.register_script(scripts.RELAYOUT)
        self._drop_lost = client.register_script(scripts.DROP_LOST)
        self._renew = client.register_script(scripts.LAYOUT_LOCK)
        self.type_indexes: set[str] = set()

    def _checked(self, reply: Any = 0) -> int:
        """A batch's count, once the lock is renewed for the next (LayoutError if it was lost)."""
        if int(reply) < 0 or not self._renew(keys=[self.keys.prefix], args=[self.token, LOCK_TTL_MS]):
            raise LayoutError(f"the layout upgrade lost its lock ({self.keys.layout_lock}); start again")
        return int(reply)

    def _records(self, names: Iterable[str]) -> tuple[set[str], set[str]]:
        """The task ids and destinations that keys named `names` may belong to in layout 1."""
        tasks: set[str] = set()
        dests: set[str] = set()
        for raw in names:
            name = _text(raw)
            if (self.keys.parse(name) or ("",))[0] == "type_index":
                self.type_indexes.add(name)
            elif name.startswith(self.old.task_head):
                rest = name[len(self.old.task_head) :]
                for suffix in (":history", ":payload"):
                    if rest.endswith(suffix):
                        tasks.add(rest.removesuffix(suffix))
            elif name.startswith(self.old.dest_head):
                rest = name[len(self.old.dest_head) :]
                for suffix in (":inflight", ":parked"):
                    if rest.endswith(suffix):
                        dests.add(rest.removesuffix(suffix))
        return tasks, dests

    def move(self, batch: int) -> int:
        moved = 0
        cursor = 0
        match = _glob_escape(self.keys.prefix) + ":*"
        while True:
            step: Any = self.client.scan(cursor, match=match, count=batch)
            cursor, names = step
            tasks, dests = self._records(names)
            args: list[str] = []
            for task_id in sorted(tasks):
                args += [self.old.history(task_id), self.keys.history(task_id), "list"]
                args += [self.old.payload(task_id), self.keys.payload(task_id), "string"]
            for dest in sorted(dests):
                args += [self.old.dest_inflight(dest), self.keys.dest_inflight(dest), "zset"]
                args += [self.old.dest_parked(dest), self.keys.dest_parked(dest), "zset"]
            moved += self._checked(
                self._relayout(keys=[self.keys.prefix], args=[self.token, *args]) if args else 0
            )
            if int(cursor) == 0:
                return moved

    def drop_lost(self, batch: int) -> int:
        indexes = [self.keys.index(status=s.value) for s in TaskStatus] + sorted(self.type_indexes)
        dropped = 0
        cursor = 0
        while True:
            step: Any = self.client.zscan(self.keys.index(), cursor, count=batch)
            cursor, rows = step
            ids = [_text(member) for member, _ in rows]
            with self.client.pipeline(transaction=False) as pipe:
                for task_id in ids:
                    pipe.type(self.keys.task(task_id))
                types = pipe.execute()
            lost = [i for i, t in zip(ids, types, strict=True) if _text(t) != "hash"]
            args = [self.token, str(len(indexes)), *indexes, *lost]
            dropped += self._checked(self._drop_lost(keys=[self.keys.prefix], args=args) if lost else 0)
            if int(cursor) == 0:
                return dropped


def ensure_layout_at(
    target: RedisTarget | str, keys: Keys | None = None, *, connect_wait_s: float = 30.0
) -> LayoutReport:
    """`ensure_layout` at a process's start: waits (bounded) for the Redis at `target` to answer first."""
    client = sync_client(target, socket_connect_timeout=5, socket_timeout=30)
    try:
        deadline = time.monotonic() + connect_wait_s
        while True:
            try:
                client.ping()
                break
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if time.monotonic() >= deadline:
                    raise LayoutError(
                        f"Redis did not answer for {connect_wait_s:.0f} s ({exc}): the key layout "
                        "cannot be checked, so nothing starts"
                    ) from None
                time.sleep(POLL_S * 5)
        return ensure_layout(client, keys)
    finally:
        client.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
