"""Concurrent calls of one script from the worker's threads, sent together in one round trip.

Every claim was a round trip of its own, and a round trip costs Redis more than the claim script
itself (its read, its write and a turn of its event loop: ~28 us of Redis CPU against the
script's ~24, measured with one claim per round trip: bench/script_cost.py). The worker's
threads claim in bursts (a Dramatiq fetch hands several messages over at once), so the calls
that arrive while one batch is in flight ride the next one: the thread that finds no batch in
flight sends everything waiting, on its own connection, and hands each caller its reply. A lone
call goes out at once. How a batch is sent is the caller's `send`: a pipeline of scripts
(`Script.many`, each call its own script: an error reply fails only its caller), or one call of
a script that takes many (the claim: lua/claim.lua pays its fixed cost once per batch).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

_UNSET: Any = object()


class _Call:
    __slots__ = ("args", "reply")

    def __init__(self, args: list[Any]) -> None:
        self.args = args
        self.reply: Any = _UNSET  # the script's reply, or the exception to raise


# Sends a batch of calls (each its arguments) -> their replies in order (an exception: that call's error).
Send = Callable[[list[list[Any]]], list[Any]]


class Combined:
    """`call(*args)` for many threads at once: their concurrent calls share a round trip."""

    def __init__(self, send: Send) -> None:
        self.send = send
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
            replies = self.send([c.args for c in batch])
        except BaseException as exc:  # a broken connection: every caller of the batch gets it
            replies = [exc] * len(batch)
        with self._cond:
            for c, reply in zip(batch, replies, strict=True):
                c.reply = reply
            self._sending = False
            self._cond.notify_all()
