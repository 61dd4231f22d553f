"""The in-memory state store: counters and quotas of this one process.

The embedded default (``storage.state: memory``). Nothing here awaits, so each
operation is atomic with respect to every other request on the event loop. Windows
that have ended are swept out as the table grows, so per-value keys chosen by clients
(``limit_by_per_header: …`` with ``*``) cannot grow memory without bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tollway.state import UNTRACKED, Applied, QuotaState, QuotaTake, StateStore, WindowTake

# A window slot is [window index, used, end in ms]; a list so the hot path mutates it
# in place instead of allocating a new one each request.
_Slot = list[int]


class MemoryStateStore(StateStore):
    """``clock`` returns seconds since the Unix epoch (tests pass a fake one)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._windows: dict[str, _Slot] = {}
        self._quotas: dict[str, list[int]] = {}  # key -> [remaining, generation, ledger version]
        self._sweep_at = 4096
        self.errors = 0

    async def take(self, key: str, window_s: int, limit: int, amount: int) -> WindowTake:
        now_ms = int(self._clock() * 1000)
        length = window_s * 1000
        window = now_ms // length
        slot = self._windows.get(key)
        if slot is None:
            if len(self._windows) >= self._sweep_at:
                self._sweep(now_ms)
            slot = [window, 0, (window + 1) * length]
            self._windows[key] = slot
        elif slot[0] != window:
            slot[0], slot[1], slot[2] = window, 0, (window + 1) * length
        used = slot[1]
        reset_ms = slot[2] - now_ms
        if used + amount > limit:
            return WindowTake(False, used, reset_ms, window)
        used += amount
        slot[1] = used
        return WindowTake(True, used, reset_ms, window)

    async def adjust(self, key: str, window: int, delta: int) -> None:
        slot = self._windows.get(key)
        if slot is not None and slot[0] == window:
            slot[1] += delta

    def _sweep(self, now_ms: int) -> None:
        self._windows = {k: s for k, s in self._windows.items() if s[2] > now_ms}
        # Sweep again only once the live table has doubled: amortised O(1) per take.
        self._sweep_at = max(4096, 2 * len(self._windows))

    async def quota_get(self, key: str) -> int | None:
        q = self._quotas.get(key)
        return q[0] if q is not None else None

    async def quota_set(self, key: str, value: int) -> None:
        q = self._quotas.get(key)
        if q is None:
            self._quotas[key] = [value, 1, UNTRACKED]
        else:
            q[0] = value
            q[1] += 1

    async def quota_add(self, key: str, delta: int) -> int:
        q = self._quotas.setdefault(key, [0, 0, UNTRACKED])
        q[0] += delta
        return q[0]

    async def quota_take(self, key: str, amount: int) -> QuotaTake:
        q = self._quotas.get(key)
        if q is None:
            return QuotaTake(False, None, 0, 0)
        if q[0] <= 0:
            return QuotaTake(False, q[0], 0, q[1])
        reserved = min(amount, q[0])
        q[0] -= reserved
        return QuotaTake(True, q[0], reserved, q[1])

    async def quota_settle(self, key: str, generation: int, reserved: int, spent: int) -> int | None:
        q = self._quotas.get(key)
        if q is None:
            return None
        q[0] += reserved - spent if q[1] == generation else -spent
        return q[2]

    async def quota_read(self, key: str) -> QuotaState | None:
        q = self._quotas.get(key)
        return QuotaState(q[0], q[2]) if q is not None else None

    async def quota_apply(self, key: str, refresh: bool, amount: int, version: int) -> Applied:
        q = self._quotas.get(key)
        if q is None:
            return Applied.MISSING
        if q[2] >= version:
            return Applied.ALREADY
        if q[2] < version - 1:
            return Applied.BEHIND
        if refresh:
            q[0] = amount
            q[1] += 1
        else:
            q[0] += amount
        q[2] = version
        return Applied.APPLIED

    async def quota_restore(self, key: str, value: int, version: int, generation: int, *, replace: bool) -> bool:
        q = self._quotas.get(key)
        if q is not None and (not replace or q[2] >= version):
            return False
        self._quotas[key] = [value, generation, version]
        return True

    def window_used(self, key: str) -> int | None:
        """The current counter of ``key`` whatever its window (for tests and inspection)."""
        slot = self._windows.get(key)
        return slot[1] if slot is not None else None


__all__ = ["MemoryStateStore"]
