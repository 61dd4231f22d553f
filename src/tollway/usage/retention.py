"""``storage.retention_days``: usage records older than N days are deleted once a day, in
small batches with a pause between them, so the trim never holds the database (and the
usage writer behind it) for long. Only usage records: the audit log is kept.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tollway.background import BackgroundTask
from tollway.storage import StorageError
from tollway.usage.store import UsageStore

log = logging.getLogger("tollway")

DAY_S = 86400.0
BATCH = 500
# The first trim comes soon after start (a gateway restarted daily still trims), not at once.
FIRST_TRIM_S = 2.0
_PAUSE_S = 0.05


class Retention:
    """Trims ``store`` to its last ``days`` days, once a day, until stopped."""

    def __init__(self, store: UsageStore, days: int, *, first_s: float = FIRST_TRIM_S) -> None:
        self.store = store
        self.days = days
        self.first_s = first_s
        self._task = BackgroundTask("usage-retention", self._run)

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        await asyncio.sleep(self.first_s)
        while True:
            try:
                deleted = await self.trim()
                if deleted:
                    log.info("retention: deleted %d usage records older than %d days", deleted, self.days)
            except StorageError as exc:
                log.warning("retention: trimming usage records failed, trying again tomorrow: %s", exc)
            await asyncio.sleep(DAY_S)

    async def trim(self) -> int:
        """Delete every record older than ``days`` days, a batch at a time; return how many."""
        cutoff_ms = int((time.time() - self.days * DAY_S) * 1000)
        total = 0
        while True:
            deleted = await self.store.delete_before(cutoff_ms, BATCH)
            total += deleted
            if deleted < BATCH:
                return total
            await asyncio.sleep(_PAUSE_S)
