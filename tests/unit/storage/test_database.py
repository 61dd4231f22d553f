"""The database layer (storage/database.py) under the consumer and usage stores, on SQLite
and on PostgreSQL.

PostgreSQL tests use the ``test`` database on 127.0.0.1:5432, each in a schema of its own
that is dropped afterwards. Without a reachable server they skip, except under ``CI=true``,
where they fail.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from tollway.storage import Database, StorageError, open_database, records_folder


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
    with pytest.raises(StorageError, match=re.escape("127.0.0.1:1/test")) as caught:
        await database.connect()
    assert caught.value.unreachable and not caught.value.refused
    await database.close()


async def test_data_the_database_cannot_hold_is_refused(db: Database) -> None:
    await db.migrate(["CREATE TABLE IF NOT EXISTS t (n BIGINT, s TEXT NOT NULL)"])
    refused = [(2**63, "x"), (1, None)]  # out of BIGINT's range; a NOT NULL column
    if db.dialect == "postgresql":
        refused.append((1, "a\x00b"))  # PostgreSQL's text holds no NUL
    for row in refused:
        with pytest.raises(StorageError) as caught:
            await db.insert_rows("t", ("n", "s"), [row])
        assert caught.value.refused and not caught.value.unreachable, row
    with pytest.raises(StorageError) as caught:
        await db.fetch("SELECT * FROM no_such_table")
    assert not caught.value.refused


async def test_insert_rows_skips_rows_whose_unique_value_is_there(db: Database) -> None:
    await db.migrate(
        ["CREATE TABLE IF NOT EXISTS t (k BIGINT, v TEXT)", "CREATE UNIQUE INDEX IF NOT EXISTS t_k ON t (k)"]
    )
    await db.insert_rows("t", ("k", "v"), [(1, "a"), (2, "b")], unique="k")
    await db.insert_rows("t", ("k", "v"), [(2, "again"), (3, "c"), (None, "d"), (None, "e")], unique="k")
    assert await db.fetch("SELECT k, v FROM t ORDER BY v") == [
        {"k": 1, "v": "a"},
        {"k": 2, "v": "b"},
        {"k": 3, "v": "c"},
        {"k": None, "v": "d"},
        {"k": None, "v": "e"},
    ]
    with pytest.raises(StorageError):
        await db.insert_rows("t", ("k", "v"), [(4, "x"), (4, "y")])  # without unique, a duplicate fails the batch
    assert len(await db.fetch("SELECT k FROM t")) == 5


def test_the_records_folder_is_in_the_data_folder_and_names_its_database(tmp_path: Path) -> None:
    assert (
        records_folder("sqlite:///./tollway-data/tollway.db", tmp_path) == tmp_path / "tollway-data/records-tollway.db"
    )
    assert records_folder("sqlite:////var/lib/t/usage.db", tmp_path) == Path("/var/lib/t/records-usage.db")
    assert records_folder("sqlite:///:memory:", tmp_path) is None
    one = records_folder("postgresql://tw:secret@db:5432/tollway", tmp_path)
    assert one is not None and one.parent == tmp_path / "tollway-data" and one.name.startswith("records-postgresql-")
    assert records_folder("postgres://tw:other@db:5432/tollway", tmp_path) == one  # the password is not who it is
    assert records_folder("postgresql://tw@db:5432/tollway?search_path=b", tmp_path) != one


def test_storage_data_folder_moves_the_records_folder(tmp_path: Path) -> None:
    # A container's config is mounted read-only; the journal goes to its volume.
    pg = records_folder("postgresql://tw@db:5432/tollway", Path("/etc/tollway"), "/var/lib/tollway")
    assert pg is not None and pg.parent == Path("/var/lib/tollway") and pg.name.startswith("records-postgresql-")
    assert records_folder("sqlite:///./t.db", tmp_path, "state") == tmp_path / "state" / "records-t.db"


def test_unsupported_url_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        open_database("mysql://x/y", tmp_path)


@pytest.mark.postgres
async def test_a_database_that_takes_no_connections_now_is_unreachable_not_refusing_data(tmp_path: Path) -> None:
    """``ALTER DATABASE … ALLOW_CONNECTIONS false`` (an operator's maintenance) answers a
    new connection with SQLSTATE 55000: an outage, so the usage writer keeps its records
    queued and journaled; read as the statement refusing its data, records stored while
    it happened went to the dead-letter file (a judge lost 413 of 3,000 that way)."""
    from tests.support.usage_support import PG_URL

    name = f"tw_noconn_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_URL, timeout=3)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        database = open_database(PG_URL.rsplit("/", 1)[0] + f"/{name}", tmp_path)
        await database.connect()
        try:
            await database.migrate(["CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY)"])
            await database.insert_rows("t", ("k",), [("a",)])
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
            for attempt in ("b", "c"):  # the broken connection, then a new one refused
                with pytest.raises(StorageError) as caught:
                    await database.insert_rows("t", ("k",), [(attempt,)])
                assert caught.value.unreachable and not caught.value.refused, caught.value
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await database.insert_rows("t", ("k",), [("d",)])
            assert [r["k"] for r in await database.fetch("SELECT k FROM t ORDER BY k")] == ["a", "d"]
        finally:
            await database.close()
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.close()
