"""Runtime consumers served from memory (consumers/directory.py): lookups without queries,
revocations that act at once, and changes that reach another directory on the same database
within seconds; each test on SQLite and on PostgreSQL.

PostgreSQL tests use the ``test`` database on 127.0.0.1:5432, each in a schema of its own
that is dropped afterwards. Without a reachable server they skip, except under ``CI=true``,
where they fail.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.consumer_support import new_directory
from tollway.consumers.consumer import Consumer
from tollway.consumers.directory import ConsumerDirectory
from tollway.consumers.store import ConsumerNotFound
from tollway.storage import Database, open_database


async def _eventually(check: Callable[[], bool], within: float = 5.0) -> float:
    """Seconds until ``check()`` held; fails after ``within`` seconds."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > within:
            raise AssertionError(f"not true within {within} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def test_add_then_lookup_finds_the_consumer(directory: ConsumerDirectory) -> None:
    consumer, key = await directory.add("alice", ["gpt-4o*"], ["team-a"])
    assert key.startswith("tw-") and len(key) >= 3 + 32
    assert consumer == Consumer("alice", ("gpt-4o*",), ("team-a",), "runtime")
    assert directory.lookup(key) == consumer
    assert directory.lookup(key + "x") is None
    assert directory.lookup("tw-" + "A" * 43) is None
    assert directory.lookup("xxxxxx") is None


async def test_revoke_stops_the_key_at_once(directory: ConsumerDirectory) -> None:
    _, key = await directory.add("alice")
    await directory.revoke("alice")
    assert directory.lookup(key) is None
    with pytest.raises(ConsumerNotFound):
        await directory.revoke("alice")


async def test_revoked_name_can_be_added_again_with_a_new_key(directory: ConsumerDirectory) -> None:
    _, old = await directory.add("alice")
    await directory.revoke("alice")
    consumer, new = await directory.add("alice", None, ["g"])
    assert new != old
    assert directory.lookup(old) is None
    assert directory.lookup(new) == consumer


async def test_a_new_directory_loads_what_is_stored(directory: ConsumerDirectory, db_url: str, tmp_path: Path) -> None:
    consumer, key = await directory.add("alice", ["m*"], ["g"])
    other_db = open_database(db_url, tmp_path)
    await other_db.connect()
    other = new_directory(other_db)
    try:
        await other.start()
        assert other.lookup(key) == consumer
    finally:
        await other.stop()
        await other_db.close()


async def test_changes_reach_another_directory_within_seconds(
    directory: ConsumerDirectory, db_url: str, tmp_path: Path
) -> None:
    """Two directories on one database stand for two replicas."""
    other_db = open_database(db_url, tmp_path)
    await other_db.connect()
    other = new_directory(other_db)
    await other.start()
    try:
        consumer, key = await directory.add("alice")
        assert await _eventually(lambda: other.lookup(key) == consumer) < 5
        await directory.revoke("alice")
        assert directory.lookup(key) is None
        assert await _eventually(lambda: other.lookup(key) is None) < 5
    finally:
        await other.stop()
        await other_db.close()


async def test_a_database_outage_keeps_the_last_known_consumers(
    directory: ConsumerDirectory, db: Database, db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    consumer, key = await directory.add("alice")
    await db.close()  # every refresh now fails
    await asyncio.sleep(0.35)
    assert directory.lookup(key) == consumer
    assert "refresh failed" in caplog.text
    await db.connect()
    writer_db = open_database(db_url, tmp_path)
    await writer_db.connect()
    try:
        await new_directory(writer_db).revoke("alice")
        assert await _eventually(lambda: directory.lookup(key) is None) < 5
    finally:
        await writer_db.close()


async def test_lookups_make_no_queries(directory: ConsumerDirectory) -> None:
    _, key = await directory.add("alice")
    before = directory.store.query_count
    for i in range(5000):
        assert directory.lookup(key) is not None
        assert directory.lookup(f"tw-unknown-{i}") is None
        assert directory.lookup(f"unknown-{i}") is None
    assert directory.store.query_count == before


async def test_an_unchanged_store_costs_one_small_query_per_refresh(directory: ConsumerDirectory) -> None:
    await directory.refresh()  # takes in the add/revoke bumps, if any
    before = directory.store.query_count
    assert await directory.refresh() is False
    assert directory.store.query_count == before + 1
