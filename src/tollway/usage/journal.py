"""The usage journal: a process's usage records on local disk from the moment its calls
end until the database has them.

A records folder (``storage.records_folder``) holds::

    journal/<name>.lock         locked (flock) by the live process <name>, its whole life
    journal/<name>.<n>.jsonl    its segments: one line per record (``storable``)
    dead-letter.jsonl           records the database refused (``dead_letter``)

The usage writer appends each batch of records with one ``write`` (the accountant hands
them on every few milliseconds, never per call), so a killed process leaves all but its
last few milliseconds of records in the page cache, which outlives the process (not the
machine: nothing is fsynced). The writer says how far the database has come (``stored``):
a segment whose records are all stored is deleted, and the open one is emptied whenever
everything is stored. A segment grows to ``segment_bytes`` before the next one begins, so
a database slower than the traffic leaves whole files to delete, not one that only grows.

At ``open`` the journal adopts the journals of processes that have ended: a lock file
whose lock can be taken belongs to a dead process (the kernel drops a flock with its
holder, SIGKILL included), so its segments become this process's backlog, which the
writer reads into the database when it has nothing else to do; they and their lock file
are deleted once stored. The lock stays held meanwhile, so no other process replays them
too. A lock file only appears under its name once locked (it is made under another name,
locked, then renamed), so a starting process is never taken for a dead one.

A record read back here may have been stored already (a kill between the commit and the
deletion); the writer's keys make storing it again a no-op.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from tollway.storage import private_folder

log = logging.getLogger("tollway")

# The most a full disk leaves waiting in memory to be journaled (see ``append``), and
# how often the disk is tried again meanwhile.
UNWRITTEN_MAX_BYTES = 64 << 20
_RETRY_EVERY_S = 1.0
# The reach of held lines no store of the queue covers (``_hold``).
_NEVER = sys.maxsize
_LOCK = ".lock"
_SEGMENT = ".jsonl"


@dataclass(slots=True, eq=False)
class _Orphan:
    """A dead process's journal, its lock held while its segments are replayed."""

    lock_path: Path
    lock_fd: int
    left: int
    kept: bool = False


@dataclass(slots=True, eq=False)
class _Segment:
    path: Path
    # The writer's queue position just past this segment's last record (see ``stored``).
    end: int = 0
    orphan: _Orphan | None = field(default=None)


class Journal:
    """This process's journal in ``folder``/journal; ``open`` before use, ``close`` at stop.

    Positions: the writer numbers the records it queues (fresh ones and ones read back
    from the backlog alike) 0, 1, 2, … and stores them in that order; ``append`` and
    ``loaded`` say which position a segment's records reach, ``stored`` how far the
    database has come.
    """

    def __init__(self, folder: Path, *, segment_bytes: int = 4 << 20, warn_interval_s: float = 10.0) -> None:
        self.folder = folder / "journal"
        self.segment_bytes = segment_bytes
        self.warn_interval_s = warn_interval_s
        self.name = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._lock_fd = -1
        self._fd = -1
        self._seq = 0
        self._size = 0
        self._current = _Segment(self._segment_path(0))
        # Some of the current segment's records never reached the queue (it was full).
        self._spilled = False
        # Segments whose records are all queued, deleted once stored up to their end.
        self._done: deque[_Segment] = deque()
        # Segments to read back: dead processes' and our own spilled ones.
        self._backlog: deque[_Segment] = deque()
        # Lines a write could not take (a full disk), with the queue position each batch
        # reaches, written before the next ones (``append``): until then their records
        # are in the writer's queue alone. Past ``UNWRITTEN_MAX_BYTES`` the oldest are let
        # go, their count and reach kept (``_not_held``). Both forget what is stored.
        self._held: deque[tuple[bytes, int]] = deque()
        self._held_bytes = 0
        self._not_held: deque[tuple[int, int]] = deque()
        self._retry_at = 0.0
        self._last_warning = -float("inf")

    @property
    def is_open(self) -> bool:
        return self._lock_fd >= 0

    @property
    def missing(self) -> int:
        """How many queued records the journal does not hold (its writes failed): a stop
        now loses them."""
        return sum(data.count(b"\n") for data, _ in self._held) + sum(n for n, _ in self._not_held)

    def _segment_path(self, seq: int) -> Path:
        return self.folder / f"{self.name}.{seq}{_SEGMENT}"

    def open(self) -> None:
        """Take this process's lock, begin its first segment, adopt dead processes'
        journals. Raises ``OSError`` when the folder cannot be used."""
        private_folder(self.folder)  # the records folder, its journal: this user's alone
        lock_path = self.folder / f"{self.name}{_LOCK}"
        making = self.folder / f".{self.name}.new"
        fd = os.open(making, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(making, lock_path)
        except BaseException:
            os.close(fd)
            making.unlink(missing_ok=True)
            raise
        self._lock_fd = fd
        self._fd = self._open_segment(self._current.path)
        self._adopt()

    @staticmethod
    def _open_segment(path: Path) -> int:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)

    def _adopt(self) -> None:
        for path in sorted(self.folder.iterdir()):
            name = path.name
            if name.endswith(_LOCK) and name != f"{self.name}{_LOCK}":
                self._adopt_one(path, name.removesuffix(_LOCK))
        if self._backlog:
            log.warning(
                "usage: %d journal file(s) of ended processes found in %s; their records go to the database now",
                len(self._backlog),
                self.folder,
            )

    @staticmethod
    def _take_lock(path: Path) -> int | None:
        """The fd holding ``path``'s lock, or None if a live process holds it or the file
        is gone (or was replaced, by the time the lock was had)."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except (BlockingIOError, FileNotFoundError):
            pass
        os.close(fd)
        return None

    def _adopt_one(self, lock_path: Path, name: str) -> None:
        fd = self._take_lock(lock_path)
        if fd is None:
            return
        segments = []
        for path in self.folder.glob(f"{name}.*{_SEGMENT}"):
            seq = path.name.removeprefix(f"{name}.").removesuffix(_SEGMENT)
            if seq.isdigit():
                segments.append((int(seq), path))
        if not segments:
            lock_path.unlink(missing_ok=True)
            os.close(fd)
            return
        orphan = _Orphan(lock_path, fd, len(segments))
        self._backlog.extend(_Segment(path, orphan=orphan) for _, path in sorted(segments))

    def append(self, data: bytes, end: int) -> None:
        """Write ``data`` (whole lines) with one system call; the records reach position
        ``end`` in the writer's queue. A failed write (a full disk; a segment that could
        not be opened) is logged once per ``warn_interval_s`` and its lines are held, in
        order, to be written before the next ones: tried again at most once a second,
        so a full disk costs an append no more than the lines it holds (``missing``
        counts their records meanwhile; the records are still queued)."""
        if self._lock_fd < 0:
            return
        self._current.end = end
        if self._held or self._fd < 0:
            self._hold(data, end)
            self._retry(time.monotonic())
            return
        if not self._write(data):
            self._hold(data, end)
            self._retry_at = time.monotonic() + _RETRY_EVERY_S
            return
        if self._size >= self.segment_bytes:
            self._rotate()

    def _hold(self, data: bytes, end: int) -> None:
        # Lines of records the full queue did not take (``spill``) are in no queue: the
        # database storing the queue does not make them stored; only the journal, read
        # back, can (their reach: never).
        self._held.append((data, _NEVER if self._spilled else end))
        self._held_bytes += len(data)
        while self._held_bytes > UNWRITTEN_MAX_BYTES:
            # The oldest go first; their records are still counted as not journaled.
            dropped, reach = self._held.popleft()
            self._held_bytes -= len(dropped)
            count = dropped.count(b"\n")
            self._not_held.append((count, reach))
            if reach == _NEVER:
                self._warn(
                    f"usage: {count} record(s) lost: the record queue is full and the "
                    f"journal in {self.folder} cannot be written"
                )

    def _retry(self, now: float) -> None:
        """Write the held lines, oldest first, if it is time to try and the disk takes
        them (a failed try costs one write: the first that fails ends it)."""
        if now < self._retry_at:
            return
        self._retry_at = now + _RETRY_EVERY_S
        if self._fd < 0:
            try:
                self._fd = self._open_segment(self._current.path)
            except OSError as exc:
                self._warn(f"usage: starting a journal segment in {self.folder} failed: {exc}")
                return
        held = self._held
        while held:
            data = held[0][0]
            if not self._write(data):
                return
            held.popleft()
            self._held_bytes -= len(data)
        if self._size >= self.segment_bytes:
            self._rotate()

    def retry(self) -> None:
        """Write the held lines now if the disk takes them (at a stop)."""
        self._retry_at = 0.0
        if self._held or self._fd < 0:
            self._retry(time.monotonic())

    def _write(self, data: bytes) -> bool:
        try:
            written = os.write(self._fd, data)
            while written < len(data):  # a regular file takes it whole unless the disk is full
                written += os.write(self._fd, data[written:])
        except OSError as exc:
            self._warn(f"usage: appending to the journal in {self.folder} failed: {exc}")
            try:
                os.ftruncate(self._fd, self._size)  # no line cut short before the next ones
            except OSError:
                pass
            return False
        self._size += len(data)
        return True

    def spill(self) -> None:
        """Some records just appended were not queued (the queue was full): read the
        current segment back once the writer has caught up."""
        self._spilled = True

    def _rotate(self) -> None:
        try:
            os.close(self._fd)
        finally:
            self._fd = -1
        (self._backlog if self._spilled else self._done).append(self._current)
        self._seq += 1
        self._current = _Segment(self._segment_path(self._seq), end=self._current.end)
        self._size = 0
        self._spilled = False
        try:
            self._fd = self._open_segment(self._current.path)
        except OSError as exc:
            self._warn(f"usage: starting a journal segment in {self.folder} failed: {exc}")

    def stored(self, position: int) -> None:
        """Every record before ``position`` is in the database (or the dead-letter file):
        delete the segments that hold nothing else; empty the current one if it can."""
        done = self._done
        while done and done[0].end <= position:
            self._delete(done.popleft())
        held = self._held
        while held and held[0][1] <= position:  # stored without ever being journaled
            self._held_bytes -= len(held.popleft()[0])
        not_held = self._not_held
        while not_held and not_held[0][1] <= position:
            not_held.popleft()
        if self._size and not self._spilled and self._current.end <= position and self._fd >= 0:
            try:
                os.ftruncate(self._fd, 0)
            except OSError as exc:
                self._warn(f"usage: emptying the journal in {self.folder} failed: {exc}")
                return
            self._size = 0

    def next_backlog(self) -> Path | None:
        """The next file to read back (``loaded`` once its records are queued), or None."""
        if not self._backlog and self._spilled and self._fd >= 0:
            self._rotate()
        return self._backlog[0].path if self._backlog else None

    def loaded(self, end: int) -> None:
        """The file ``next_backlog`` named has its records queued, up to position ``end``."""
        segment = self._backlog.popleft()
        segment.end = end
        self._done.append(segment)

    def unreadable(self) -> None:
        """The file ``next_backlog`` named cannot be read: leave it for the next start."""
        segment = self._backlog.popleft()
        if segment.orphan is not None:
            segment.orphan.kept = True
            self._forget(segment.orphan)

    def _delete(self, segment: _Segment) -> None:
        try:
            segment.path.unlink(missing_ok=True)
        except OSError as exc:
            self._warn(f"usage: deleting {segment.path} failed: {exc}")
            if segment.orphan is not None:
                segment.orphan.kept = True
        if segment.orphan is not None:
            self._forget(segment.orphan)

    @staticmethod
    def _forget(orphan: _Orphan) -> None:
        orphan.left -= 1
        if orphan.left == 0:
            if not orphan.kept:
                orphan.lock_path.unlink(missing_ok=True)
            os.close(orphan.lock_fd)

    def close(self) -> bool:
        """Release everything. When every record is stored, the journal's files go too
        and True is returned; else they stay, with the backlog not yet read, for the next
        start (which adopts them)."""
        if self._lock_fd < 0:
            return True
        clean = not self._done and not self._backlog and not self._spilled and self._size == 0
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if clean:
            self._current.path.unlink(missing_ok=True)
            (self.folder / f"{self.name}{_LOCK}").unlink(missing_ok=True)
        os.close(self._lock_fd)
        self._lock_fd = -1
        # Dead processes' journals not finished: their locks go, their files stay.
        orphans = {id(s.orphan): s.orphan for s in (*self._done, *self._backlog) if s.orphan is not None}
        for orphan in orphans.values():
            os.close(orphan.lock_fd)
        self._done.clear()
        self._backlog.clear()
        return clean

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning >= self.warn_interval_s:
            self._last_warning = now
            log.warning("%s", message)
