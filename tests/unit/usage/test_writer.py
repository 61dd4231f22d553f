"""The batching usage writer (usage/writer.py): against a fake store, and on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.support.usage_support import DAY1, rec
from tollway.storage import Database, StorageError, open_database
from tollway.usage.record import UsageRecord
from tollway.usage.store import UsageStore
from tollway.usage.writer import UsageWriter


class FakeStore(UsageStore):
    """Records written, in order; ``fail`` makes writes raise StorageError."""

    def __init__(self) -> None:
        self.batches: list[list[UsageRecord]] = []
        self.fail = False

    async def write(self, records: Sequence[UsageRecord]) -> None:
        await asyncio.sleep(0)
        if self.fail:
            raise StorageError("database down")
        self.batches.append(list(records))

    @property
    def written(self) -> list[str]:
        return [r.request_id for b in self.batches for r in b]


def _ids(n: int, start: int = 0) -> list[UsageRecord]:
    return [rec(DAY1, "alice", request_id=f"r{i}") for i in range(start, start + n)]


async def test_the_writer_flushes_within_its_interval_in_batches() -> None:
    store = FakeStore()
    writer = UsageWriter(store, batch_size=4, interval_s=0.05)
    writer.start()
    for r in _ids(10):
        writer.add([r])
    await asyncio.sleep(0.2)
    assert store.written == [f"r{i}" for i in range(10)]
    assert max(len(b) for b in store.batches) <= 4
    await writer.stop()


async def test_a_full_batch_wakes_the_writer_before_its_interval() -> None:
    store = FakeStore()
    writer = UsageWriter(store, batch_size=5, interval_s=60)
    writer.start()
    for r in _ids(5):
        writer.add([r])
    await asyncio.sleep(0.05)
    assert len(store.written) == 5
    await writer.stop()


async def test_stop_writes_everything_even_records_added_meanwhile() -> None:
    store = FakeStore()
    writer = UsageWriter(store, interval_s=60)
    writer.start()
    for r in _ids(3):
        writer.add([r])
    stopping = asyncio.ensure_future(writer.stop())
    await asyncio.sleep(0)
    writer.add(_ids(1, start=3))  # a call cut off by the shutdown finishes now
    await stopping
    assert store.written == ["r0", "r1", "r2", "r3"]


async def test_a_full_queue_drops_and_warns_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore()
    writer = UsageWriter(store, max_queue=3, warn_interval_s=3600)
    with caplog.at_level(logging.WARNING, logger="tollway"):
        for r in _ids(10):
            writer.add([r])  # no writer task: nothing drains the queue
    assert writer.pending == 3 and writer.dropped == 7
    warnings = [m for m in caplog.messages if "queue is full" in m]
    assert len(warnings) == 1 and "dropped 1 record" in warnings[0]
    await writer.stop()
    assert store.written == ["r0", "r1", "r2"]


async def test_a_failed_write_keeps_its_records_and_retries(caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore()
    store.fail = True
    writer = UsageWriter(store, interval_s=0.02)
    writer.start()
    with caplog.at_level(logging.WARNING, logger="tollway"):
        for r in _ids(3):
            writer.add([r])
        await asyncio.sleep(0.15)
        assert store.written == [] and writer.pending == 3
        store.fail = False
        await asyncio.sleep(0.1)
    assert store.written == ["r0", "r1", "r2"]
    assert sum("will retry" in m for m in caplog.messages) == 1
    assert any("works again" in m for m in caplog.messages)
    await writer.stop()


async def test_sync_returns_once_earlier_records_are_written() -> None:
    store = FakeStore()
    writer = UsageWriter(store, interval_s=60)
    writer.start()
    for r in _ids(2):
        writer.add([r])
    await asyncio.wait_for(writer.sync(), 1)
    assert store.written == ["r0", "r1"]
    await writer.stop()
    writer.add(_ids(1, start=2))
    await writer.sync()  # no task any more: writes directly
    assert store.written == ["r0", "r1", "r2"]


async def test_the_writer_on_a_real_database(database_url: str, tmp_path: Path) -> None:
    db: Database = open_database(database_url, tmp_path)
    await db.connect()
    store = UsageStore(db)
    await store.migrate()
    writer = UsageWriter(store, batch_size=50, interval_s=0.05)
    writer.start()
    for r in _ids(120):
        writer.add([r])
    await writer.stop()
    assert len(await store.recent(1000)) == 120
    await db.close()
