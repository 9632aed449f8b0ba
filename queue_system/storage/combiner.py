"""Concurrent calls of one script from the worker's threads, sent together as one pipeline.

Every claim was a round trip of its own, and a round trip costs Redis more than the claim script
itself (its read, its write and a turn of its event loop: ~28 us of Redis CPU against the
script's ~20, measured with one claim per round trip). The worker's threads claim in bursts (a
Dramatiq fetch hands several messages over at once), so the calls that arrive while one pipeline
is in flight ride the next one: the thread that finds no pipeline in flight sends everything
waiting, on its own connection, and hands each caller its reply. A lone call goes out at once, as
before; each call is still its own script (atomic alone, and an error reply fails only its caller).
"""

from __future__ import annotations

import threading
from typing import Any

from queue_system.storage.evalsha import Script

_UNSET: Any = object()


class _Call:
    __slots__ = ("args", "reply")

    def __init__(self, args: list[Any]) -> None:
        self.args = args
        self.reply: Any = _UNSET  # the script's reply, or the exception to raise


class Combined:
    """`script(*args)` for many threads at once: their concurrent calls share a pipeline."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self._cond = threading.Condition()
        self._waiting: list[_Call] = []
        self._sending = False

    def __call__(self, *args: Any) -> Any:
        call = _Call(list(args))
        with self._cond:
            self._waiting.append(call)
            while self._sending and call.reply is _UNSET:
                self._cond.wait()
            if call.reply is _UNSET:  # nothing in flight: this thread sends what waits
                self._sending = True
                batch, self._waiting = self._waiting, []
        if call.reply is _UNSET:
            self._send(batch)
        if isinstance(call.reply, BaseException):
            raise call.reply
        return call.reply

    def _send(self, batch: list[_Call]) -> None:
        try:
            replies: list[Any] = self.script.many([c.args for c in batch])
        except BaseException as exc:  # a broken connection: every caller of the batch gets it
            replies = [exc] * len(batch)
        with self._cond:
            for c, reply in zip(batch, replies, strict=True):
                c.reply = reply
            self._sending = False
            self._cond.notify_all()
