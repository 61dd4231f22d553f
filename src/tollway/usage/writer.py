"""Usage records to the database in batches, off the request path.

Finished calls' records are appended to a queue (``add``: no I/O, no await). One
writer task takes everything queued and inserts it in one transaction, every
``interval_s`` (so a crash loses at most that much) or sooner when a batch fills.
``stop`` writes whatever is left: a graceful stop loses nothing.

A full queue (the database is down or slower than the traffic) never blocks or fails a
request: the record is dropped, counted, and a warning says how many, at most once per
``warn_interval_s``. A failed write keeps its records queued and is retried next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from tollway.background import BackgroundTask
from tollway.storage import StorageError
from tollway.usage.record import UsageRecord
from tollway.usage.store import UsageStore

log = logging.getLogger("tollway")


class UsageWriter:
    """One queue and one writer task per process; ``start`` inside the running loop."""

    def __init__(
        self,
        store: UsageStore,
        *,
        max_queue: int = 100_000,
        # A crash loses at most interval_s plus the accountant's drain interval.
        batch_size: int = 256,
        interval_s: float = 0.25,
        warn_interval_s: float = 10.0,
    ) -> None:
        self.store = store
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.warn_interval_s = warn_interval_s
        self.dropped = 0
        self.written = 0
        self._queue: deque[UsageRecord] = deque()
        self._wake = asyncio.Event()
        self._waiters: list[asyncio.Future[None]] = []
        self._stopping = False
        self._task = BackgroundTask("usage-writer", self._run)
        self._dropped_unreported = 0
        self._last_warning = -float("inf")
        self._failing = False

    @property
    def pending(self) -> int:
        return len(self._queue)

    def add(self, records: list[UsageRecord]) -> None:
        """Queue records (no I/O, no await); past ``max_queue`` the rest are dropped."""
        queue = self._queue
        room = self.max_queue - len(queue)
        if room < len(records):
            self._drop(len(records) - max(room, 0))
            records = records[: max(room, 0)]
        queue.extend(records)
        if len(queue) >= self.batch_size:
            self._wake.set()

    def _drop(self, n: int) -> None:
        self.dropped += n
        self._dropped_unreported += n
        now = time.monotonic()
        if now - self._last_warning >= self.warn_interval_s:
            log.warning(
                "usage: the record queue is full (%d); dropped %d record(s) since the last warning "
                "(%d in all): the database is down or slower than the traffic",
                self.max_queue,
                self._dropped_unreported,
                self.dropped,
            )
            self._last_warning = now
            self._dropped_unreported = 0

    def start(self) -> None:
        self._task.start()

    async def sync(self) -> None:
        """Return once every record queued before this call was written (or its write
        failed): the admin API calls it so its answers include this process's latest calls."""
        if not self._task.running:
            await self._write_logged()
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake.set()
        await waiter

    async def stop(self) -> None:
        """Let the writer task finish its round and end, then write what is left (calls
        that finished meanwhile included). Not cancelled mid-write: a cancelled commit
        may still land, and its records would then be written twice."""
        self._stopping = True
        self._wake.set()
        await self._task.join()
        try:
            await self._write_all()
        except StorageError as exc:
            log.error("usage: %d record(s) could not be written at shutdown: %s", len(self._queue), exc)

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
            waiters, self._waiters = self._waiters, []
            await self._write_logged()
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _write_logged(self) -> None:
        try:
            await self._write_all()
        except StorageError as exc:
            # The records stay queued for the next round; say so once per outage.
            if not self._failing:
                log.warning("usage: writing records failed, will retry: %s", exc)
            self._failing = True
        except Exception:  # a bug here must not end recording for good
            log.exception("usage: writing records failed")
        else:
            if self._failing:
                log.warning("usage: writing records works again")
            self._failing = False

    async def _write_all(self) -> None:
        """Write the queue in batches; a failed batch goes back to the front and the
        error propagates."""
        while self._queue:
            n = min(self.batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(n)]
            try:
                await self.store.write(batch)
            except BaseException:
                self._queue.extendleft(reversed(batch))
                raise
            self.written += n
