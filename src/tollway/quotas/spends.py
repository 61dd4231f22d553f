"""Spends on their way to the database: summed per quota and ledger version as calls
settle (no await, no database on the request path), written a batch at a time.

The queue holds one number per quota key and version, however many calls there are, so
it cannot grow with traffic, even while the database is down. ``write`` takes the lot
and subtracts it in one transaction; what the database could not take goes back into the
queue for the next round. A spend the database refuses (a key it cannot store) is
dropped with an error line, tried alone so it never holds up the others.

``writing`` is held for the whole of each write. A rebuild reads the database under it,
so what it reads and what is still queued (``queued_for``) never overlap and never
leave a gap: a spend is either in the database or in the queue.

Outages are logged once per ``warn_interval_s``, without tracebacks, and the recovery
once.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tollway.quotas.balances import BalanceTable, Spends
from tollway.storage import StorageError

log = logging.getLogger("tollway.quotas")


class SpendQueue:
    def __init__(self, table: BalanceTable, *, warn_interval_s: float = 10.0) -> None:
        self.table = table
        self.warn_interval_s = warn_interval_s
        self.writing = asyncio.Lock()
        self.dropped = 0
        self._queued: dict[str, dict[int, int]] = {}
        self._failing = False
        self._next_warning = 0.0
        self._unreported = 0

    def add(self, key: str, version: int, amount: int) -> None:
        """Queue ``amount`` tokens spent on ``key``, charged by the store at ``version``."""
        per_version = self._queued.get(key)
        if per_version is None:
            self._queued[key] = {version: amount}
        else:
            per_version[version] = per_version.get(version, 0) + amount

    @property
    def queued(self) -> int:
        """Tokens waiting to be written, over every quota."""
        return sum(sum(v.values()) for v in self._queued.values())

    def queued_for(self, key: str, since_version: int) -> int:
        """Tokens queued for ``key`` that the database will count once written: those
        charged at ``since_version`` (its last refresh) or later. Call with ``writing``
        held."""
        per_version = self._queued.get(key)
        if not per_version:
            return 0
        return sum(amount for version, amount in per_version.items() if version >= since_version)

    async def write(self) -> bool:
        """Write everything queued; False when the database could not take it (it stays
        queued)."""
        async with self.writing:
            batch, self._queued = self._queued, {}
            if not batch:
                return True
            try:
                await self.table.charge(batch)
            except StorageError as exc:
                if not exc.refused:
                    self._requeue(batch)
                    self._failed(exc)
                    return False
                if not await self._one_by_one(batch):
                    return False
            except BaseException:
                # Cut short (the stop's deadline): still owed, as far as anyone can tell.
                self._requeue(batch)
                raise
            if self._failing:
                self._failing = False
                log.warning("quota ledger: the database takes spends again")
                self._next_warning = 0.0
            return True

    async def _one_by_one(self, batch: Spends) -> bool:
        """Each spend of a refused batch alone: a refused one is dropped, the rest written
        (or queued again if the database stops answering half-way)."""
        items = [(key, version, amount) for key, per in batch.items() for version, amount in per.items()]
        for i, (key, version, amount) in enumerate(items):
            try:
                await self.table.charge_one(key, version, amount)
            except StorageError as exc:
                if exc.refused:
                    self.dropped += amount
                    log.error("quota ledger: the database refused a spend of %d on %r, dropped: %s", amount, key, exc)
                    continue
                for k, v, a in items[i:]:
                    self.add(k, v, a)
                self._failed(exc)
                return False
        return True

    def _requeue(self, batch: Spends) -> None:
        # Spends queued meanwhile stay; the batch's are added back to them.
        for key, per_version in batch.items():
            for version, amount in per_version.items():
                self.add(key, version, amount)

    def _failed(self, exc: StorageError) -> None:
        self._failing = True
        now = time.monotonic()
        if now < self._next_warning:
            self._unreported += 1
            return
        more = f" ({self._unreported} more failed writes since the last report)" if self._unreported else ""
        log.warning(
            "quota ledger: spends wait in memory (%d tokens), the database did not take them: %s%s",
            self.queued,
            exc,
            more,
        )
        self._unreported = 0
        self._next_warning = now + self.warn_interval_s


__all__ = ["SpendQueue"]
