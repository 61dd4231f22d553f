"""Deadlines for the waits every call has, without a timer each.

A call waits on several things that almost never run out: the provider's response
headers, the next piece of a stream, the moment its client is worth watching, the
client's next request on a kept-alive connection. An event loop timer for each costs
2 µs (``loop.call_later`` and its cancel), ``asyncio.timeout`` 4.6 µs, several per call
on a path whose whole budget is a few hundred: most of it spent arming and disarming
timers that never fire (benchmarks/README.md).

``Deadlines`` keeps them in slots of ``RESOLUTION_S``: arming one adds it to the set of
its slot, cancelling takes it out, and the loop has one timer, for the earliest slot
with anything in it. A deadline runs when its slot ends: never early, at most
``RESOLUTION_S`` late. That suits timeouts of seconds and delays meant as "soon", not
precise timing.
"""

from __future__ import annotations

import asyncio
import heapq
import weakref
from collections.abc import Callable

RESOLUTION_S = 0.05


class Deadline:
    """One armed deadline; ``cancel()`` disarms it (as a ``TimerHandle``'s does)."""

    __slots__ = ("_callback", "_slot")

    def __init__(self, callback: Callable[[], object], slot: set[Deadline]) -> None:
        self._callback = callback
        self._slot = slot

    def cancel(self) -> None:
        self._slot.discard(self)


class Deadlines:
    """The deadlines of one event loop (``for_loop``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._slots: dict[int, set[Deadline]] = {}
        self._due: list[int] = []  # the slots' numbers, a heap
        self._timer: asyncio.TimerHandle | None = None
        self._timer_slot = 0

    def after(self, delay: float, callback: Callable[[], object]) -> Deadline:
        """Run ``callback`` once ``delay`` seconds have passed (see the module)."""
        return self.at(self._loop.time() + delay, callback)

    def at(self, when: float, callback: Callable[[], object]) -> Deadline:
        """Run ``callback`` once the loop's clock has passed ``when``."""
        number = int(when / RESOLUTION_S) + 1
        slot = self._slots.get(number)
        if slot is None:
            slot = self._slots[number] = set()
            heapq.heappush(self._due, number)
            if self._timer is None or number < self._timer_slot:
                self._arm(number)
        deadline = Deadline(callback, slot)
        slot.add(deadline)
        return deadline

    def _arm(self, number: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_slot = number
        self._timer = self._loop.call_at(number * RESOLUTION_S, self._run)

    def _run(self) -> None:
        self._timer = None
        # A timer may run a little before its time (uvloop counts in milliseconds): the
        # slot ending now counts as ended.
        now = int((self._loop.time() + 0.002) / RESOLUTION_S)
        due, slots = self._due, self._slots
        while due and due[0] <= now:
            for deadline in slots.pop(heapq.heappop(due)):
                try:
                    deadline._callback()
                except Exception as exc:  # one callback's failure must not stop the others
                    self._loop.call_exception_handler(
                        {"message": "a deadline's callback failed", "exception": exc, "deadline": deadline}
                    )
        # Slots emptied by cancels need no timer of their own.
        while due and not slots[due[0]]:
            del slots[heapq.heappop(due)]
        if due:
            self._arm(due[0])


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = weakref.WeakKeyDictionary()
_last: tuple[asyncio.AbstractEventLoop | None, Deadlines | None] = (None, None)


def for_loop(loop: asyncio.AbstractEventLoop) -> Deadlines:
    """The deadlines of ``loop`` (made on first use; a process runs one loop, whose are
    remembered for the next ask)."""
    global _last
    last_loop, last = _last
    if loop is last_loop and last is not None:
        return last
    found = _BY_LOOP.get(loop)
    if found is None:
        found = _BY_LOOP[loop] = Deadlines(loop)
    _last = (loop, found)
    return found
