"""Usage records to the database in batches, off the request path, none lost on the way.

``add`` (the accountant's drain, every few milliseconds) makes each record's database row,
storable (``storable.encode``), appends the batch's rows to this process's journal with
one write, and queues them: no await. One writer task takes everything queued and
inserts it in batches, every ``interval_s`` or sooner when a batch fills, and tells the
journal how far it got: what is stored leaves the journal.

When something goes wrong:

- The database refuses a batch: its rows are tried one by one. A row the database
  refuses (or one that fails while rows around it are stored) goes to the dead-letter
  file (``dead_letter``: one log line, ``tollway_records_failed_total``); the others are
  stored. A bad record never holds up the ones after it.
- The database is unreachable, or fails every row: the records stay queued and
  journaled and are tried again each round. A warning says so at most once per
  ``warn_interval_s`` (10 s), without a traceback, and one more when writing works again.
- The queue is full (``max_queue``: a long outage): later records wait in the journal
  alone, and are read back from it once the queue has caught up.
- A graceful stop writes what is queued, for up to ``stop_timeout_s``; what it cannot
  write stays in the journal, and the next start stores it. After a kill, the next start
  stores what the journal kept: all but the last drain's records.

Every record has a key (a random 62-bit start per process, plus one per record), stored in
``usage_records.record_key`` under a unique index and inserted with ``ON CONFLICT DO
NOTHING``: however often a retry or a replay sends a record, it is stored once. (Two
processes' keys can only meet if their random starts lie closer together than the
records they write: for a million records each, a chance of about 2^-41 per pair.)

Without a records folder (an in-memory database) there is no journal: a full queue
drops records (counted, with a warning), and a refused record is only logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from tollway.background import BackgroundTask
from tollway.storage import StorageError
from tollway.usage.dead_letter import DeadLetter
from tollway.usage.journal import Journal
from tollway.usage.record import UsageRecord
from tollway.usage.storable import decode, encode
from tollway.usage.store import UsageRow, UsageStore, record_of_inserted

log = logging.getLogger("tollway")

# Journal lines read back per step before the event loop gets a turn.
_LOAD_STEP = 1000


class UsageWriter:
    """One queue and one writer task per process; ``start`` inside the running loop.

    ``folder`` is the records folder (``storage.records_folder``) for the journal and the
    dead-letter file; ``on_dead_letter`` is called once per record that went there.
    """

    def __init__(
        self,
        store: UsageStore,
        *,
        folder: Path | None = None,
        on_dead_letter: Callable[[], None] | None = None,
        max_queue: int = 100_000,
        batch_size: int = 256,
        interval_s: float = 0.25,
        warn_interval_s: float = 10.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self.store = store
        self.journal = Journal(folder, warn_interval_s=warn_interval_s) if folder is not None else None
        self.dead_letter = DeadLetter(folder / "dead-letter.jsonl" if folder is not None else None, on_dead_letter)
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.warn_interval_s = warn_interval_s
        self.stop_timeout_s = stop_timeout_s
        self.dropped = 0
        self.written = 0
        self._queue: deque[UsageRow] = deque()
        self._next_key = secrets.randbits(62)
        # Records ever queued, and records taken off the queue's front for good (stored or
        # dead-lettered): the journal's positions (see Journal).
        self._position = 0
        self._handled = 0
        self._wake = asyncio.Event()
        self._waiters: list[asyncio.Future[None]] = []
        self._stopping = False
        self._task = BackgroundTask("usage-writer", self._run)
        self._unreported = 0
        self._last_full_warning = -float("inf")
        self._failing = False
        self._last_failure_warning = -float("inf")

    @property
    def pending(self) -> int:
        return len(self._queue)

    def add(self, records: list[UsageRecord]) -> None:
        """Journal and queue ``records`` (no await; one write for the lot)."""
        if not records:
            return
        key = self._next_key
        self._next_key = key + len(records)
        rows: list[UsageRow] = []
        lines: list[bytes] = []
        for record in records:
            row, line = encode(key, record)
            if line is None:
                self._dead_letter(row, "the record cannot be written as JSON (a number beyond 64 bits)")
            else:
                rows.append(row)
                lines.append(line)
            key += 1
        queue = self._queue
        room = max(self.max_queue - len(queue), 0)
        if room < len(rows):
            self._full(len(rows) - room)
            del rows[room:]
        queue.extend(rows)
        self._position += len(rows)
        if self.journal is not None:
            self.journal.append(b"".join(lines), self._position)
        if len(queue) >= self.batch_size:
            self._wake.set()

    def _full(self, n: int) -> None:
        journal = self.journal
        if journal is not None and journal.is_open:
            journal.spill()
            what = "wait in the journal until the database catches up"
        else:
            self.dropped += n
            what = "were dropped"
        self._unreported += n
        now = time.monotonic()
        if now - self._last_full_warning >= self.warn_interval_s:
            log.warning(
                "usage: the record queue is full (%d): %d record(s) since the last warning %s; "
                "the database is down or slower than the traffic",
                self.max_queue,
                self._unreported,
                what,
            )
            self._last_full_warning = now
            self._unreported = 0

    def start(self) -> None:
        """Open the journal (adopting ended processes' journals) and start the task."""
        if self.journal is not None:
            try:
                self.journal.open()
            except OSError as exc:
                log.error(
                    "usage: cannot keep a journal in %s (%s): records wait for the database in memory only",
                    self.journal.folder,
                    exc,
                )
                self.journal = None
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
        """Let the task finish its round, then write what is left (calls that finished
        meanwhile included), all within ``stop_timeout_s``; whatever is not written by
        then stays in the journal for the next start."""
        self._stopping = True
        self._wake.set()
        finish = asyncio.ensure_future(self._finish())
        try:
            done, _ = await asyncio.wait((finish,), timeout=self.stop_timeout_s)
            if not done:
                # Not wait_for: it waits for the cancelled write to end, and a database
                # that answers nothing holds a cancelled statement for its command timeout
                # (asyncpg asks the silent server to cancel it). The database's close
                # drops the connection under it.
                finish.cancel()
                raise TimeoutError
            finish.result()
        except (StorageError, TimeoutError) as exc:
            why = str(exc) or f"the database did not answer within {self.stop_timeout_s:g}s"
            log.warning("usage: %d record(s) not written at the stop, %s: %s", len(self._queue), self._kept(), why)
        except Exception:  # a bug here must not stop the shutdown
            log.exception("usage: writing records at the stop failed")
        if self.journal is not None:
            self.journal.close()

    def _kept(self) -> str:
        """Where the records still queued at a stop wait for the next start."""
        journal = self.journal
        if journal is None:
            return "lost"
        journal.retry()
        missing = min(journal.missing, len(self._queue))
        where = f"kept in {journal.folder} for the next start"
        if not missing:
            return where
        if missing == len(self._queue):
            return "lost: the journal could not be written either"
        return f"{len(self._queue) - missing} {where}, {missing} lost: the journal could not be written"

    async def _finish(self) -> None:
        await self._task.join()
        await self._write_all()

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
            waiters, self._waiters = self._waiters, []
            caught_up = await self._write_logged()
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            if caught_up:
                try:
                    await self._read_backlog()
                except Exception:  # a bug here must not end recording for good
                    self._log_bug("reading the journal back")

    async def _read_backlog(self) -> None:
        """Store the journal's backlog (ended processes', or records the full queue
        left there), a file at a time, while the queue has room."""
        journal = self.journal
        while journal is not None and not self._stopping and len(self._queue) < self.batch_size:
            path = journal.next_backlog()
            if path is None:
                return
            await self._load(journal, path)
            if not await self._write_logged():
                return

    async def _load(self, journal: Journal, path: Path) -> None:
        try:
            data = await asyncio.get_running_loop().run_in_executor(None, path.read_bytes)
        except FileNotFoundError:
            data = b""
        except OSError as exc:
            log.warning("usage: cannot read %s, left for the next start: %s", path, exc)
            journal.unreadable()
            return
        lines = data.split(b"\n")
        bad: list[int] = []
        queue = self._queue
        for start in range(0, len(lines), _LOAD_STEP):
            for i in range(start, min(start + _LOAD_STEP, len(lines))):
                if lines[i]:
                    try:
                        queue.append(decode(lines[i]))
                    except ValueError:
                        bad.append(i)
                        continue
                    self._position += 1
            await asyncio.sleep(0)
        journal.loaded(self._position)
        journal.stored(self._handled)  # a file with nothing to store goes at once
        # The last line of a killed process's journal may be cut short: that is its
        # last few milliseconds, expected. Anything else unreadable is worth a word.
        last = len(lines) - 1 if lines[-1] else len(lines) - 2
        if [i for i in bad if i != last]:
            log.warning("usage: %s: %d unreadable line(s) skipped", path, len(bad))

    async def _write_logged(self) -> bool:
        """Write the queue; True when all of it went (no error)."""
        try:
            await self._write_all()
        except StorageError as exc:
            self._failed(exc)
            return False
        except Exception:  # a bug here must not end recording for good
            self._log_bug("writing records")
            return False
        if self._failing:
            log.warning("usage: writing records works again")
            self._failing = False
        return True

    def _log_bug(self, what: str) -> None:
        now = time.monotonic()
        if now - self._last_failure_warning >= self.warn_interval_s:
            self._last_failure_warning = now
            log.exception("usage: %s failed", what)

    def _failed(self, exc: StorageError) -> None:
        """An outage: say so once, then at most once per ``warn_interval_s``."""
        now = time.monotonic()
        if not self._failing or now - self._last_failure_warning >= self.warn_interval_s:
            self._last_failure_warning = now
            journal = self.journal
            missing = journal.missing if journal is not None else 0
            kept = "" if journal is None else f" ({missing} not journaled either)" if missing else " (journaled)"
            log.warning(
                "usage: writing records failed, will retry; %d record(s) waiting%s: %s", len(self._queue), kept, exc
            )
        self._failing = True

    async def _write_all(self) -> None:
        """Write the queue in batches. A batch the database cannot take whole is tried
        row by row; what cannot be written now goes back to the front and the error
        propagates."""
        queue = self._queue
        while queue:
            n = min(self.batch_size, len(queue))
            batch = [queue.popleft() for _ in range(n)]
            try:
                await self.store.write_rows(batch)
            except StorageError as exc:
                if exc.unreachable:
                    queue.extendleft(reversed(batch))
                    raise
                await self._one_by_one(batch)
                continue
            except BaseException:
                queue.extendleft(reversed(batch))
                raise
            self.written += n
            self._advance(n)

    async def _one_by_one(self, batch: list[UsageRow]) -> None:
        """Each row of ``batch`` alone: see ``_settle`` for what becomes of the ones that
        fail. Raises (the rest back at the queue's front) when the database is down."""
        outcomes: list[StorageError | None] = []
        stop: StorageError | None = None
        settled = 0
        try:
            for row in batch:
                try:
                    await self.store.write_rows([row])
                except StorageError as exc:
                    if exc.unreachable:
                        stop = exc
                        break
                    outcomes.append(exc)
                else:
                    outcomes.append(None)
        finally:  # on cancellation too: settle what was tried, put the rest back
            settled = self._settle(batch, outcomes)
            if settled < len(batch):
                self._queue.extendleft(reversed(batch[settled:]))
        if settled < len(batch):
            raise stop or next(o for o in outcomes if o is not None)

    def _settle(self, batch: list[UsageRow], outcomes: list[StorageError | None]) -> int:
        """How many of ``batch``'s first rows are done with, given each tried row's
        outcome (None: stored). A row the database refused is done: dead letter. A row
        that failed otherwise is done (dead letter) when another row was stored, proving
        the database takes rows; if none was, the failure may be the database's, so that
        row and the ones after it are not done."""
        stored = outcomes.count(None)
        done = len(outcomes)
        if not stored:
            done = next((i for i, o in enumerate(outcomes) if o is not None and not o.refused), done)
        for row, outcome in zip(batch[:done], outcomes, strict=False):
            if outcome is not None:
                self._dead_letter(row, str(outcome))
        self.written += stored
        self._advance(done)
        return done

    def _dead_letter(self, row: UsageRow, error: str) -> None:
        key = row[-1]
        self.dead_letter.add(key if isinstance(key, int) else None, record_of_inserted(row), error)

    def _advance(self, n: int) -> None:
        self._handled += n
        if self.journal is not None:
            self.journal.stored(self._handled)
