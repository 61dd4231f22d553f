"""The in-memory state store: counters and quotas of this one process.

The embedded default (``storage.state: memory``). Nothing here awaits, so each
operation is atomic with respect to every other request on the event loop. Windows
that have ended are swept out as the table grows, so per-value keys chosen by clients
(``limit_by_per_header: …`` with ``*``) cannot grow memory without bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from tollway.state import (
    ADMITTED,
    UNTRACKED,
    Admission,
    Allowance,
    Applied,
    QuotaState,
    QuotaTake,
    SpendAdmission,
    StateStore,
    WindowTake,
    held_key,
)

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
        # Spend counters: key -> [value, expiry in ms (0: never)]; holds and running calls.
        self._spends: dict[str, list[int]] = {}
        self._counts: dict[str, int] = {}
        self._claims: dict[str, int] = {}  # key -> expiry in ms
        self._bound: dict[str, tuple[str, int]] = {}  # key -> (value, expiry in ms)
        self._bound_sweep_at = 1024
        # Each budget period makes new spend counters and alert claims: ended ones are
        # dropped once their table has doubled since the last sweep (as windows are).
        self._spends_sweep_at = 1024
        self._claims_sweep_at = 1024
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

    def _spend(self, key: str) -> list[int] | None:
        found = self._spends.get(key)
        if found is not None and found[1] and found[1] <= self._clock() * 1000:
            del self._spends[key]
            return None
        return found

    async def spend_admit(self, subjects: Sequence[Allowance], amount: int, hold_ms: int) -> SpendAdmission:
        return self.spend_admit_now(subjects, amount)

    def spend_admit_now(self, subjects: Sequence[Allowance], amount: int) -> SpendAdmission:
        """``spend_admit`` without a coroutine: a budgeted call's hot path (``Budgets``)."""
        # One process: nothing outlives a call here, so holds need no expiry. One pass
        # decides: a missing counter first (it is rebuilt and the call asked again),
        # else the first subject that refuses, in order.
        counts = self._counts
        refusal: SpendAdmission | None = None
        for i, s in enumerate(subjects):
            if s.budget >= 0:
                found = self._spend(s.key)
                if found is None:
                    return SpendAdmission(Admission.MISSING, i)
                if refusal is None and amount:  # (a call held at nothing passes any budget)
                    held = counts.get(s.held_key, 0)
                    if found[0] + held + amount > s.budget:
                        refusal = SpendAdmission(Admission.OVER_BUDGET, i, found[0], held)
            if refusal is None and s.max_parallel >= 0 and counts.get(s.running_key, 0) >= s.max_parallel:
                refusal = SpendAdmission(Admission.TOO_MANY, i)
        if refusal is not None:
            return refusal
        for s in subjects:
            if s.budget >= 0:
                held_key = s.held_key
                counts[held_key] = counts.get(held_key, 0) + amount
            if s.max_parallel >= 0:
                counts[s.running_key] = counts.get(s.running_key, 0) + 1
        return ADMITTED

    async def spend_release(
        self, subjects: Sequence[Allowance], amount: int, spent: int, lease: str = ""
    ) -> list[int | None]:
        return self.spend_release_now(subjects, amount, spent)

    def spend_release_now(self, subjects: Sequence[Allowance], amount: int, spent: int) -> list[int | None]:
        """``spend_release`` without a coroutine (``Budgets``)."""
        counts = self._counts
        after: list[int | None] = []
        for s in subjects:
            value = None
            if s.budget >= 0:
                _lower(counts, s.held_key, amount)
                found = self._spend(s.key)
                if found is not None:
                    found[0] += spent
                    value = found[0]
            if s.max_parallel >= 0:
                _lower(counts, s.running_key, 1)
            after.append(value)
        return after

    async def spend_restore(self, key: str, value: int, ttl_ms: int) -> bool:
        if self._spend(key) is not None:
            return False
        now_ms = int(self._clock() * 1000)
        if len(self._spends) >= self._spends_sweep_at:
            self._spends = {k: v for k, v in self._spends.items() if not v[1] or v[1] > now_ms}
            self._spends_sweep_at = max(1024, 2 * len(self._spends))
        self._spends[key] = [value, now_ms + ttl_ms if ttl_ms else 0]
        return True

    async def spend_read(self, key: str) -> tuple[int | None, int]:
        found = self._spend(key)
        return (found[0] if found is not None else None), self._counts.get(held_key(key), 0)

    async def claim(self, key: str, ttl_ms: int) -> bool:
        now = int(self._clock() * 1000)
        expiry = self._claims.get(key)
        if expiry is not None and expiry > now:
            return False
        if expiry is None and len(self._claims) >= self._claims_sweep_at:
            self._claims = {k: e for k, e in self._claims.items() if e > now}
            self._claims_sweep_at = max(1024, 2 * len(self._claims))
        self._claims[key] = now + ttl_ms
        return True

    async def spend_forget(self, key: str) -> None:
        self._spends.pop(key, None)

    async def bound(self, key: str) -> str | None:
        held = self._bound.get(key)
        return held[0] if held is not None and held[1] > int(self._clock() * 1000) else None

    async def bind(self, key: str, value: str, ttl_ms: int) -> str:
        now = int(self._clock() * 1000)
        held = self._bound.get(key)
        if held is not None and held[1] > now:
            return held[0]
        if held is None and len(self._bound) >= self._bound_sweep_at:
            self._bound = {k: b for k, b in self._bound.items() if b[1] > now}
            self._bound_sweep_at = max(1024, 2 * len(self._bound))
        self._bound[key] = (value, now + ttl_ms)
        return value

    def window_used(self, key: str) -> int | None:
        """The current counter of ``key`` whatever its window (for tests and inspection)."""
        slot = self._windows.get(key)
        return slot[1] if slot is not None else None


def _lower(counts: dict[str, int], key: str, by: int) -> None:
    """Take ``by`` off a count that never goes below 0; a count at 0 is dropped, so a
    subject's counters of ended periods do not stay behind."""
    left = counts.get(key, 0) - by
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


__all__ = ["MemoryStateStore"]
