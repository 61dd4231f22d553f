"""The database layer (storage/database.py) under the consumer and usage stores, on SQLite
and on PostgreSQL.

PostgreSQL tests use the ``test`` database on 127.0.0.1:5432, each in a schema of its own
that is dropped afterwards. Without a reachable server they skip, except under ``CI=true``,
where they fail.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tollway.storage import Database, StorageError, open_database


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
