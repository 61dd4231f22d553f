"""The usage journal (usage/journal.py): segments, trimming, and adopting the journals of
processes that ended (killed for real, in a child process), never a live one's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.usage_support import DAY1, rec
from tollway.usage.journal import Journal
from tollway.usage.storable import decode, encode

_REPO = Path(__file__).resolve().parents[3]
# A child process that journals three records, says so, and waits to be killed.
_CHILD = """
import sys, time
from pathlib import Path
from tests.support.usage_support import DAY1, rec
from tollway.usage.journal import Journal
from tollway.usage.storable import encode
journal = Journal(Path(sys.argv[1]))
journal.open()
journal.append(b"".join(encode(100 + i, rec(DAY1, "alice", request_id=f"child-{i}"))[1] or b"" for i in range(3)), 3)
print("journaled", flush=True)
time.sleep(60)
"""


@pytest.fixture
def child(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=_REPO)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "journaled"
    yield proc
    proc.kill()
    proc.wait(10)
    proc.stdout.close()


def _lines(n: int, start: int = 0) -> bytes:
    return b"".join(encode(i, rec(DAY1, "alice", request_id=f"r{i}"))[1] or b"" for i in range(start, start + n))


def _key(line: bytes) -> int:
    key = decode(line)[-1]
    assert isinstance(key, int)
    return key


def _files(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "journal").iterdir())


def test_a_live_process_journal_is_never_adopted_a_killed_one_is(tmp_path: Path, child: subprocess.Popen[str]) -> None:
    live = Journal(tmp_path)
    live.open()
    assert live.next_backlog() is None  # the child holds its lock
    live.close()

    child.send_signal(signal.SIGKILL)
    child.wait(10)
    heir = Journal(tmp_path)
    heir.open()
    path = heir.next_backlog()
    assert path is not None
    assert [decode(line)[3] for line in path.read_bytes().splitlines()] == [f"child-{i}" for i in range(3)]
    assert Journal(tmp_path).next_backlog() is None  # held by the heir meanwhile: adopted once
    heir.loaded(3)
    heir.stored(3)
    assert heir.next_backlog() is None
    assert _files(tmp_path) == [f"{heir.name}.0.jsonl", f"{heir.name}.lock"]  # the child's files are gone
    assert heir.close()
    assert _files(tmp_path) == []


def test_two_processes_starting_together_adopt_a_dead_journal_once(
    tmp_path: Path, child: subprocess.Popen[str]
) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    first, second = Journal(tmp_path), Journal(tmp_path)
    first.open()
    second.open()
    assert [first.next_backlog() is not None, second.next_backlog() is not None] == [True, False]
    second.close()
    first.close()  # not stored: the dead journal stays for the next start
    third = Journal(tmp_path)
    third.open()
    assert third.next_backlog() is not None
    third.close()


def test_the_open_segment_is_emptied_once_everything_in_it_is_stored(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    segment = tmp_path / "journal" / f"{journal.name}.0.jsonl"
    journal.append(_lines(3), 3)
    journal.stored(2)
    assert len(segment.read_bytes().splitlines()) == 3  # r2 is not stored yet
    journal.stored(3)
    assert segment.read_bytes() == b""
    journal.append(_lines(2, start=3), 5)
    assert [_key(line) for line in segment.read_bytes().splitlines()] == [3, 4]
    assert not journal.close()  # two records not stored: the files stay
    assert _files(tmp_path) == [f"{journal.name}.0.jsonl", f"{journal.name}.lock"]


def test_full_segments_are_deleted_once_their_records_are_stored(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=600)
    journal.open()
    for i in range(10):
        journal.append(_lines(1, start=i), i + 1)
    segments = [n for n in _files(tmp_path) if n.endswith(".jsonl")]
    assert len(segments) >= 3
    journal.stored(5)
    remaining = [
        _key(line) for p in sorted((tmp_path / "journal").glob("*.jsonl")) for line in p.read_bytes().splitlines()
    ]
    assert remaining and min(remaining) <= 5 and max(remaining) == 9  # the oldest whole segments went
    assert len([n for n in _files(tmp_path) if n.endswith(".jsonl")]) < len(segments)
    journal.stored(10)
    assert journal.close()
    assert _files(tmp_path) == []


def test_a_spilled_segment_is_read_back(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    journal.append(_lines(4), 2)  # two of the four records found room in the queue
    journal.spill()
    journal.stored(2)
    path = journal.next_backlog()
    assert path is not None and len(path.read_bytes().splitlines()) == 4
    journal.loaded(6)
    journal.stored(6)
    assert journal.next_backlog() is None
    assert journal.close()


def _on_a_full_disk(tmp_path: Path) -> tuple[Journal, Path]:
    """An open journal whose first segment is /dev/full: every write to it fails,
    ENOSPC, as on a full disk (the segment's name is made before the journal opens it)."""
    journal = Journal(tmp_path)
    journal.folder.mkdir(parents=True)
    segment = journal.folder / f"{journal.name}.0.jsonl"
    segment.symlink_to("/dev/full")
    journal.open()
    return journal, segment


def _room_again(tmp_path: Path) -> Path:
    """The disk has room again: the journal's descriptor on /dev/full now writes to the
    file returned."""
    (fd,) = [int(n) for n in os.listdir("/proc/self/fd") if os.path.realpath(f"/proc/self/fd/{n}") == "/dev/full"]
    room = tmp_path / "room.jsonl"
    with room.open("wb") as file:
        os.dup2(file.fileno(), fd)
    return room


def test_lines_a_full_disk_refused_are_written_first_once_it_takes_writes_again(tmp_path: Path) -> None:
    """Appends that fail (ENOSPC) are kept and written, in order, before the next lines
    once the disk has room: the journal holds every record again, none cut short."""
    journal, _ = _on_a_full_disk(tmp_path)
    try:
        journal.append(_lines(2), 2)
        journal.append(_lines(1, start=2), 3)
        assert journal.missing == 3
        room = _room_again(tmp_path)
        journal.retry()  # (an append tries again at most once a second; a stop at once)
        journal.append(_lines(1, start=3), 4)
        assert journal.missing == 0
        assert [_key(line) for line in room.read_bytes().splitlines()] == [0, 1, 2, 3]
        journal.append(_lines(1, start=4), 5)
        journal.stored(5)
        assert journal.missing == 0
    finally:
        journal.close()


def test_held_lines_are_forgotten_once_stored_and_a_full_disk_costs_an_append_no_more(tmp_path: Path) -> None:
    """A reviewer's finding: under steady traffic on a full disk the held lines were let
    go only once the whole queue was stored (never, with calls always arriving), and each
    append joined and wrote all of them again. Held lines go as the database stores
    their records, and the disk is tried again at most once a second."""
    journal = Journal(tmp_path)
    journal.folder.mkdir(parents=True)
    (journal.folder / f"{journal.name}.0.jsonl").symlink_to("/dev/full")
    journal.open()
    try:
        for i in range(2000):
            journal.append(_lines(1, start=i), i + 1)
            journal.stored(max(i - 5, 0))  # (the database a few records behind)
        assert journal.missing <= 7
    finally:
        journal.close()


def test_a_segment_that_cannot_be_opened_holds_its_lines_until_it_can(tmp_path: Path) -> None:
    """A reviewer's finding: a segment that could not be opened after a rotation (no
    descriptors left) dropped its lines unbounded into memory and forgot them at the first
    store. They are held, counted, and written once the segment opens."""
    journal = Journal(tmp_path, segment_bytes=100)
    journal.folder.mkdir(parents=True)
    blocker = journal.folder / f"{journal.name}.1.jsonl"
    blocker.mkdir()  # (opening a folder as the next segment fails, as EMFILE would)
    journal.open()
    try:
        journal.append(_lines(2), 2)  # past 100 bytes: the next segment cannot be opened
        journal.append(_lines(3, start=2), 5)
        assert journal.missing == 3
        journal.stored(2)
        assert journal.missing == 3  # (records 2-4 are not stored)
        blocker.rmdir()
        journal.retry()
        assert journal.missing == 0
        assert [_key(line) for line in blocker.read_bytes().splitlines()] == [2, 3, 4]
    finally:
        journal.close()


def test_held_lines_of_records_past_a_full_queue_wait_for_the_journal_not_the_database(tmp_path: Path) -> None:
    """A reviewer's finding: with the queue full and the disk full, the lines of the
    records the queue did not take were held with the rest and let go once the queued
    ones were stored: in no queue and no file, lost with no count and no warning. They
    are kept until written, then read back as any spilled segment."""
    journal, segment = _on_a_full_disk(tmp_path)
    try:
        journal.spill()  # (the queue took 2 of the 5)
        journal.append(_lines(5), 2)
        journal.stored(2)
        assert journal.missing == 5
        room = _room_again(tmp_path)
        journal.retry()
        assert journal.missing == 0
        assert [_key(line) for line in room.read_bytes().splitlines()] == [0, 1, 2, 3, 4]
        assert journal.next_backlog() == segment  # (read back: the spilled records with it)
    finally:
        journal.close()
