"""Runtime consumers in the database (``consumers.store``), served from memory
(``consumers.directory``), and the database layer under
them (``storage``), each test on SQLite and on PostgreSQL.

PostgreSQL tests use the ``test`` database on 127.0.0.1:5432, each in a schema of its
own that is dropped afterwards. Without a reachable server they skip, except under
``CI=true``, where they fail.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tollway.consumers.consumer import Consumer
from tollway.consumers.directory import ConsumerDirectory
from tollway.consumers.store import (
    ConfigConsumer,
    ConsumerExists,
    ConsumerNotFound,
    ConsumerStore,
    InvalidConsumer,
)
from tollway.storage import Database, StorageError, open_database

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
CONFIG_NAMES = frozenset({"consumer1"})


# --- fixtures ---------------------------------------------------------------------------


async def _pg_admin() -> Any:
    try:
        return await asyncpg.connect(PG_URL, timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL not reachable at {PG_URL}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database URL for an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tollway.db'}"
        return
    admin = await _pg_admin()
    schema = f"tw_test_{secrets.token_hex(6)}"
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?search_path={schema}"
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


@pytest.fixture
async def db(db_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    database = open_database(db_url, tmp_path)
    await database.connect()
    yield database
    await database.close()


def _directory(database: Database) -> ConsumerDirectory:
    return ConsumerDirectory(ConsumerStore(database, config_names=lambda: CONFIG_NAMES), refresh_interval_s=0.1)


@pytest.fixture
async def directory(db: Database) -> AsyncIterator[ConsumerDirectory]:
    d = _directory(db)
    await d.start()
    yield d
    await d.stop()


async def _eventually(check: Callable[[], bool], within: float = 5.0) -> float:
    """Seconds until ``check()`` held; fails after ``within`` seconds."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > within:
            raise AssertionError(f"not true within {within} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def _raw_rows(db_url: str, tmp_path: Path) -> list[tuple[Any, ...]]:
    """Every row of ``consumers``, read around Tollway's own database layer."""
    if db_url.startswith("sqlite:///"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        try:
            return conn.execute("SELECT * FROM consumers").fetchall()
        finally:
            conn.close()
    pg = await asyncpg.connect(db_url)
    try:
        return [tuple(r) for r in await pg.fetch("SELECT * FROM consumers")]
    finally:
        await pg.close()


# --- the directory ----------------------------------------------------------------------


async def test_add_then_lookup_finds_the_consumer(directory: ConsumerDirectory) -> None:
    consumer, key = await directory.add("alice", ["gpt-4o*"], ["team-a"])
    assert key.startswith("tw-") and len(key) >= 3 + 32
    assert consumer == Consumer("alice", ("gpt-4o*",), ("team-a",), "runtime")
    assert directory.lookup(key) == consumer
    assert directory.lookup(key + "x") is None
    assert directory.lookup("tw-" + "A" * 43) is None
    assert directory.lookup("xxxxxx") is None


async def test_keys_are_unique(directory: ConsumerDirectory) -> None:
    keys = {(await directory.add(f"c{i}"))[1] for i in range(20)}
    assert len(keys) == 20


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


async def test_a_taken_name_is_refused(directory: ConsumerDirectory) -> None:
    await directory.add("alice")
    with pytest.raises(ConsumerExists):
        await directory.add("alice")
    with pytest.raises(ConsumerExists):
        await directory.add("consumer1")  # a config consumer's name


async def test_revoking_a_config_or_unknown_consumer_is_refused(directory: ConsumerDirectory) -> None:
    with pytest.raises(ConfigConsumer):
        await directory.revoke("consumer1")
    with pytest.raises(ConsumerNotFound):
        await directory.revoke("nobody")


@pytest.mark.parametrize(
    ("name", "allow_models", "groups"),
    [
        ("", None, []),
        ("a b", None, []),
        ("x\nX-Evil: 1", None, []),
        ("a" * 129, None, []),
        ("ok", [""], []),
        ("ok", None, ["bad\ngroup"]),
    ],
)
async def test_invalid_consumers_are_refused(
    directory: ConsumerDirectory, name: str, allow_models: list[str] | None, groups: list[str]
) -> None:
    with pytest.raises(InvalidConsumer):
        await directory.add(name, allow_models, groups)


async def test_list_shows_active_consumers_without_keys(directory: ConsumerDirectory) -> None:
    _, key_a = await directory.add("alice", ["gpt-4o*"], ["team-a"])
    _, key_b = await directory.add("bob")
    await directory.add("carol")
    await directory.revoke("carol")
    listed = await directory.list()
    assert [c["name"] for c in listed] == ["alice", "bob"]
    alice, bob = listed
    assert alice["allow_models"] == ["gpt-4o*"] and alice["groups"] == ["team-a"]
    assert bob["allow_models"] is None and bob["groups"] == []
    assert alice["key_hint"] == key_a[-4:] and bob["key_hint"] == key_b[-4:]
    assert all(c["source"] == "runtime" for c in listed)
    assert alice["created_at"] is not None and alice["created_at"].endswith("Z")
    assert key_a not in repr(listed) and key_b not in repr(listed)


async def test_the_table_never_holds_a_key_in_clear(directory: ConsumerDirectory, db_url: str, tmp_path: Path) -> None:
    _, key = await directory.add("alice", ["gpt-4o*"], ["team-a"])
    rows = await _raw_rows(db_url, tmp_path)
    assert len(rows) == 1
    assert all(key not in str(value) for value in rows[0])
    assert hashlib.sha256(key.encode()).hexdigest() in rows[0]


async def test_a_new_directory_loads_what_is_stored(directory: ConsumerDirectory, db_url: str, tmp_path: Path) -> None:
    consumer, key = await directory.add("alice", ["m*"], ["g"])
    other_db = open_database(db_url, tmp_path)
    await other_db.connect()
    other = _directory(other_db)
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
    other = _directory(other_db)
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
        await _directory(writer_db).revoke("alice")
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


# --- the database layer -------------------------------------------------------------------


async def test_execute_fetch_and_row_counts(db: Database) -> None:
    await db.migrate(["CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v BIGINT NOT NULL, f DOUBLE PRECISION)"])
    await db.migrate(["CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v BIGINT NOT NULL, f DOUBLE PRECISION)"])
    assert await db.execute("INSERT INTO t (k, v, f) VALUES ($1, $2, $3)", "a", 1, 0.5) == 1
    await db.insert_rows("t", ("k", "v", "f"), [("b", 2, None), ("c", 3, None)])
    assert await db.execute("UPDATE t SET v = v + $1 WHERE v >= $2", 10, 2) == 2
    rows = await db.fetch("SELECT k, v, f FROM t WHERE v > $1 ORDER BY k", 0)
    assert rows == [{"k": "a", "v": 1, "f": 0.5}, {"k": "b", "v": 12, "f": None}, {"k": "c", "v": 13, "f": None}]


async def test_a_failed_transaction_changes_nothing(db: Database) -> None:
    await db.migrate(["CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY)"])
    with pytest.raises(StorageError):
        await db.run_transaction([("INSERT INTO t (k) VALUES ($1)", ("a",)), ("INSERT INTO t (k) VALUES ($1)", ("a",))])
    assert await db.fetch("SELECT k FROM t") == []
    assert await db.run_transaction([("INSERT INTO t (k) VALUES ($1)", ("a",)), ("DELETE FROM t", ())]) == [1, 1]


async def test_bad_sql_is_a_storage_error(db: Database) -> None:
    with pytest.raises(StorageError):
        await db.fetch("SELECT * FROM no_such_table")


async def test_relative_sqlite_path_resolves_against_the_config_folder(tmp_path: Path) -> None:
    database = open_database("sqlite:///./data/nested/tollway.db", tmp_path)
    await database.connect()
    try:
        assert (await database.fetch("PRAGMA journal_mode"))[0]["journal_mode"] == "wal"
    finally:
        await database.close()
    assert (tmp_path / "data" / "nested" / "tollway.db").is_file()


async def test_unreachable_postgresql_is_a_storage_error(tmp_path: Path) -> None:
    database = open_database("postgresql://postgres@127.0.0.1:1/test", tmp_path)
    with pytest.raises(StorageError, match=re.escape("127.0.0.1:1/test")):
        await database.connect()
    await database.close()


def test_unsupported_url_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        open_database("mysql://x/y", tmp_path)
