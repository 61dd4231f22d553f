"""One small async database interface over two real backends: SQLite and PostgreSQL.

    StorageError          every failure of the database or of reaching it; says whether
                          the database refused the data or could not be reached

SQL is written once for both, with PostgreSQL's numbered placeholders (``$1``, ``$2``):
the SQLite backend rewrites them to SQLite's own numbered form (``?1``, ``?2``), so a
literal ``$1`` inside a quoted string is not supported. Stick to types both know
(``TEXT``, ``BIGINT``, ``DOUBLE PRECISION``) and ``ON CONFLICT`` upserts; where the
dialects must differ, branch on ``Database.dialect``.

Nothing here touches the database until ``connect()``; every method after it may raise
``StorageError`` (and only that) for a database problem.

``records_folder`` names the local folder that keeps a database's usage records on disk
until the database has them (the usage journal and dead-letter file, ``tollway.usage``).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import hashlib
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from pathlib import Path
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]

from tollway.storage.folders import private_folder

T = TypeVar("T")
Row = dict[str, Any]
Statement = tuple[str, Sequence[object]]

_PLACEHOLDER = re.compile(r"\$(\d+)")
# Any key works for pg_advisory_xact_lock; this one only has to be Tollway's own.
_MIGRATION_LOCK = 0x746F6C6C  # "toll"
_CONNECT_TIMEOUT_S = 10.0
# A hung server must not hang the consumer refresh or a usage flush forever.
_COMMAND_TIMEOUT_S = 30.0
# By the time the database closes, the usage writer has stored what it could (or given
# up on a silent server): a polite close has nothing left to wait for but that server.
_CLOSE_TIMEOUT_S = 2.0
_SQLITE_BUSY_TIMEOUT_MS = 5000
# Bound parameters per statement: 999 is the lowest limit any SQLite build has had.
_SQLITE_MAX_VARIABLES = 999
_SQLITE_ROWS_PER_INSERT = 64
# SQLSTATE classes of data the server refuses: data exception (bad bytes, out of range),
# integrity constraint violation, program limit exceeded (an index entry too large).
_PG_REFUSED = ("22", "23", "54")
# Connection exceptions, operator intervention (shutdown, cannot connect now), too many
# connections: the server, not the statement.
_PG_UNREACHABLE = ("08", "57P", "53300")


def _as_is(value: None) -> None:
    return value


class StorageError(Exception):
    """The database failed or could not be reached; the message says which and why.

    ``refused``: the database answered and refused the statement's data (a value it
    cannot hold: bad bytes, a number out of range, a violated constraint, an index entry
    too large), so the same data will fail again. ``unreachable``: the database could not
    be reached, or the connection broke or was shut down, so a later try may succeed.
    Neither: some other failure of the database (a full disk, a missing table).
    """

    def __init__(self, message: str, *, refused: bool = False, unreachable: bool = False) -> None:
        super().__init__(message)
        self.refused = refused
        self.unreachable = unreachable


class Database(abc.ABC):
    """A connection (SQLite) or a pool of them (PostgreSQL) with a few plain operations.

    Statements may be awaited concurrently from many tasks; each runs on its own
    (autocommit) unless grouped with ``run_transaction``.
    """

    dialect: Literal["sqlite", "postgresql"]

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the database is, for messages (never the password)."""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection or pool; creates a missing SQLite file and its folder."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close everything; safe to call twice or without ``connect``."""

    @abc.abstractmethod
    async def execute(self, sql: str, *args: object) -> int:
        """Run one statement; return the number of rows it inserted, changed or deleted."""

    @abc.abstractmethod
    async def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]], *, unique: str | None = None
    ) -> None:
        """Insert ``rows`` (values in ``columns``' order) into ``table``, all in one
        transaction, the quickest way the backend has (usage batches). With ``unique``
        (a column with a unique index), a row whose value is there already is skipped:
        inserting the same rows again changes nothing."""

    @abc.abstractmethod
    async def fetch(self, sql: str, *args: object) -> list[Row]:
        """Run a query; return its rows as dicts keyed by column name."""

    @abc.abstractmethod
    async def run_transaction(self, statements: Sequence[Statement]) -> list[int]:
        """Run statements in order in one transaction (all or none); return each one's
        row count."""

    @abc.abstractmethod
    async def migrate(self, statements: Sequence[str]) -> None:
        """Bring the schema up: idempotent statements (``CREATE TABLE IF NOT EXISTS``,
        ``INSERT … ON CONFLICT DO NOTHING``) run in one transaction, one process at a time,
        so replicas starting together do not race."""


def open_database(url: str, base_dir: Path) -> Database:
    """The database for ``storage.database``, not yet connected.

    ``sqlite:///relative.db`` resolves against ``base_dir`` (the config file's folder),
    ``sqlite:////absolute.db`` does not, ``sqlite:///:memory:`` is a private in-memory
    database; ``postgresql://`` (or ``postgres://``) URLs go to asyncpg as they are, so
    their query parameters (``?search_path=…``, ``?sslmode=…``) work.
    """
    if url.startswith("sqlite:///"):
        rest = url.removeprefix("sqlite:///")
        if rest == ":memory:":
            return SqliteDatabase(None)
        if not rest:
            raise StorageError("sqlite:/// URL names no file")
        path = Path(rest)
        return SqliteDatabase(path if path.is_absolute() else base_dir / path)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url)
    raise StorageError(f"unsupported database URL (want sqlite:/// or postgresql://): {url.split(':', 1)[0]}:…")


def records_folder(url: str, base_dir: Path, data_folder: str | None = None) -> Path | None:
    """The folder for the usage records of ``storage.database`` that are not in it yet:
    ``records-<database>`` inside the data folder, or None for a private in-memory
    database (nothing of it outlives the process).

    The data folder is the SQLite file's own folder (the default database lives in
    ``./tollway-data/``), and for PostgreSQL ``tollway-data/`` in ``base_dir`` (the
    config file's folder). The name says which database, so two configs sharing a folder
    never replay each other's records: ``records-tollway.db`` for a SQLite file,
    ``records-postgresql-<12 hex digits of a hash of the URL, password left out>``.
    ``storage.data_folder`` (``data_folder``; relative to ``base_dir``) names the data
    folder instead: a container whose config file is mounted read-only keeps its
    journal on a volume.
    """
    chosen = None if data_folder is None else Path(data_folder)
    if chosen is not None and not chosen.is_absolute():
        chosen = base_dir / chosen
    if url.startswith("sqlite:///"):
        rest = url.removeprefix("sqlite:///")
        if rest in ("", ":memory:"):
            return None
        path = Path(rest)
        path = path if path.is_absolute() else base_dir / path
        return (chosen or path.parent) / f"records-{path.name}"
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    identity = parts._replace(scheme="postgresql", netloc=netloc).geturl()
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return (chosen or base_dir / "tollway-data") / f"records-postgresql-{digest}"


def _rows_affected(status: str) -> int:
    """asyncpg answers a command tag (``INSERT 0 1``, ``UPDATE 3``); the count is last."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


@functools.lru_cache(maxsize=256)
def _sqlite_sql(sql: str) -> str:
    return _PLACEHOLDER.sub(r"?\1", sql)


def _enter_wal(conn: sqlite3.Connection) -> None:
    """Switch ``conn``'s database to WAL. Two processes opening a new file at once (the
    workers of ``--workers N``) can find it locked by the other's switch, which SQLite
    reports at once rather than through the busy timeout: try again for a while."""
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _private_file(path: Path) -> None:
    """Make the database file (and the folders to it) readable by this user alone when it
    does not exist yet: it holds key hashes, usage and audit events, and SQLite gives its
    WAL and shared-memory files the database file's permissions. One that exists keeps
    the permissions it was given."""
    private_folder(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        pass


class SqliteDatabase(Database):
    """One SQLite connection in WAL mode (readers never wait for the writer, and other
    processes — a second worker, ``tollway consumers`` — can use the same file), owned by
    one thread of its own.

    Each operation, a whole transaction included, is one function run on that thread:
    one hand-over per operation, not one per statement and cursor call, and operations
    from concurrent tasks run one after another, so a statement never lands inside
    another task's open transaction. A task cancelled while it waits leaves its operation
    either unstarted or finished by the thread: never a half-done transaction.
    """

    dialect: Literal["sqlite", "postgresql"] = "sqlite"

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None

    def describe(self) -> str:
        return f"sqlite {self.path if self.path is not None else ':memory:'}"

    async def _run(self, doing: str, operation: Callable[[sqlite3.Connection], T]) -> T:
        conn, thread = self._conn, self._thread
        if conn is None or thread is None:
            raise StorageError(f"{self.describe()}: not connected")
        try:
            return await asyncio.get_running_loop().run_in_executor(thread, operation, conn)
        except (sqlite3.IntegrityError, sqlite3.DataError, OverflowError, ValueError) as exc:
            # A constraint, a value too big, an int beyond 64 bits, text that is not
            # UTF-8 (a lone surrogate): this data, not the database.
            raise StorageError(f"{self.describe()}: {doing} failed: {exc}", refused=True) from exc
        except (sqlite3.OperationalError, OSError) as exc:
            # Locked past busy_timeout, the file or its folder unusable: may pass.
            raise StorageError(f"{self.describe()}: {doing} failed: {exc}", unreachable=True) from exc
        except sqlite3.Error as exc:
            raise StorageError(f"{self.describe()}: {doing} failed: {exc}") from exc

    async def connect(self) -> None:
        if self._conn is not None:
            return
        # sqlite3 binds int, float, str and bytearray directly and sends anything else,
        # None included, through its adaptation protocol, which for None ends in two
        # failed attribute lookups (and a formatted AttributeError) per value. A
        # registered adapter is found first and changes nothing else: None still binds
        # as NULL. (A usage row has six or so NULLs: this takes a fifth off its insert.)
        # The registry is sqlite3's, process-wide: registering again is harmless.
        sqlite3.register_adapter(type(None), _as_is)
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tollway-sqlite")
        try:
            self._conn = await asyncio.get_running_loop().run_in_executor(thread, self._open)
        except (sqlite3.Error, OSError) as exc:
            thread.shutdown(wait=False)
            raise StorageError(f"{self.describe()}: connect failed: {exc}") from exc
        self._thread = thread

    def _open(self) -> sqlite3.Connection:
        if self.path is not None:
            _private_file(self.path)
        # isolation_level=None: autocommit; transactions are begun explicitly below.
        # Opened on the connection's own thread, so sqlite3's same-thread check holds.
        conn = sqlite3.connect(str(self.path) if self.path is not None else ":memory:", isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
            _enter_wal(conn)
            # In WAL mode NORMAL still never corrupts the file and survives a process
            # crash; it skips an fsync per commit (an OS crash may lose the last few).
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    async def close(self) -> None:
        conn, thread = self._conn, self._thread
        if conn is None or thread is None:
            return
        try:
            await self._run("close", lambda c: c.close())
        finally:
            self._conn = self._thread = None
            thread.shutdown(wait=False)

    async def execute(self, sql: str, *args: object) -> int:
        def run(conn: sqlite3.Connection) -> int:
            return max(conn.execute(_sqlite_sql(sql), args).rowcount, 0)

        return await self._run("statement", run)

    async def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]], *, unique: str | None = None
    ) -> None:
        # Many rows per INSERT statement: sqlite3 lets other threads run around every
        # statement it steps, so executemany hands the GIL back and forth once per row;
        # a chunk of rows per statement does it once per chunk (measured: the event loop
        # then loses a fraction of the time to the writer that it did).
        cols = tuple(columns)
        per_chunk = max(1, min(_SQLITE_ROWS_PER_INSERT, _SQLITE_MAX_VARIABLES // len(cols)))

        def run(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                for start in range(0, len(rows), per_chunk):
                    chunk = rows[start : start + per_chunk]
                    sql = _multi_row_insert(table, cols, len(chunk), unique)
                    conn.execute(sql, list(chain.from_iterable(chunk)))

        await self._run("batch", run)

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        def run(conn: sqlite3.Connection) -> list[Row]:
            cursor = conn.execute(_sqlite_sql(sql), args)
            names = [d[0] for d in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

        return await self._run("query", run)

    async def run_transaction(self, statements: Sequence[Statement]) -> list[int]:
        def run(conn: sqlite3.Connection) -> list[int]:
            with _transaction(conn):
                return [max(conn.execute(_sqlite_sql(sql), tuple(args)).rowcount, 0) for sql, args in statements]

        return await self._run("transaction", run)

    async def migrate(self, statements: Sequence[str]) -> None:
        # BEGIN IMMEDIATE takes the write lock up front: that alone serialises processes.
        await self.run_transaction([(sql, ()) for sql in statements])


@functools.lru_cache(maxsize=64)
def _multi_row_insert(table: str, columns: tuple[str, ...], rows: int, unique: str | None) -> str:
    one = "(" + ", ".join("?" * len(columns)) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([one] * rows) + _skip_existing(unique)


def _skip_existing(unique: str | None) -> str:
    return f" ON CONFLICT ({unique}) DO NOTHING" if unique else ""


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any error.

    IMMEDIATE takes the write lock at BEGIN, where busy_timeout waits for it, rather
    than failing mid-transaction when a read would have to become a write."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class PostgresDatabase(Database):
    """An asyncpg pool: statements from concurrent tasks run on separate connections."""

    dialect: Literal["sqlite", "postgresql"] = "postgresql"

    def __init__(self, url: str, max_connections: int = 5) -> None:
        self.url = url
        self.max_connections = max_connections
        self._pool: Any = None

    def describe(self) -> str:
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        return f"postgresql {host}{port}{parts.path}"

    @contextlib.contextmanager
    def _translated(self, doing: str) -> Iterator[None]:
        try:
            yield
        except asyncpg.PostgresError as exc:
            state = str(getattr(exc, "sqlstate", None) or "")
            raise StorageError(
                self._failed(doing, exc),
                refused=state[:2] in _PG_REFUSED,
                unreachable=isinstance(exc, asyncpg.PostgresConnectionError) or state.startswith(_PG_UNREACHABLE),
            ) from exc
        except (asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            # Connection refused, reset or closed, a pool closing, a server that went silent.
            raise StorageError(self._failed(doing, exc), unreachable=True) from exc
        except asyncpg.InternalClientError as exc:
            raise StorageError(self._failed(doing, exc)) from exc

    def _failed(self, doing: str, exc: BaseException) -> str:
        return f"{self.describe()}: {doing} failed: {str(exc) or type(exc).__name__}"

    def _connected(self) -> Any:
        if self._pool is None:
            raise StorageError(f"{self.describe()}: not connected")
        return self._pool

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        """A connection of the pool. The server not giving one is an outage, whatever it
        answers: refused, reset, too many clients, ``database "x" is not currently
        accepting connections`` (55000, an operator's ALLOW_CONNECTIONS false), gone.
        Only a statement's own failure can be the data's (``refused``): read as a
        statement's, a connection refused while others were stored sent their records
        to the dead-letter file instead of back to the queue."""
        pool = self._connected()
        try:
            conn = await pool.acquire()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            raise StorageError(self._failed("connect", exc), unreachable=True) from exc
        try:
            yield conn
        except StorageError as exc:
            if exc.unreachable or not conn.is_closed():
                raise
            # The statement failed on a connection that is gone (the server ended it:
            # asyncpg may tell that as "cannot switch to state …; another operation is in
            # progress"): the connection's failure, not the data's.
            raise StorageError(str(exc), unreachable=True) from exc.__cause__
        finally:
            # Giving it back resets it, which fails on a connection that broke (asyncpg
            # then drops it and raises): the server's failure, like one to connect.
            try:
                await pool.release(conn)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                raise StorageError(self._failed("release", exc), unreachable=True) from exc

    async def connect(self) -> None:
        if self._pool is not None:
            return
        with self._translated("connect"):
            # min_size=0: a pool with a floor reconnects in the background after an
            # outage and logs a traceback each try; without one, the next statement
            # reconnects, and its failure is ours to report.
            pool = await asyncpg.create_pool(
                self.url,
                min_size=0,
                max_size=self.max_connections,
                timeout=_CONNECT_TIMEOUT_S,
                command_timeout=_COMMAND_TIMEOUT_S,
            )
            try:
                await pool.fetchval("SELECT 1")  # reachable now, or the start fails here
            except BaseException:
                await pool.close()
                raise
            self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with self._translated("close"):
                try:
                    # A server gone silent must not hold up a stop: close politely for
                    # a while, then drop the connections.
                    await asyncio.wait_for(pool.close(), _CLOSE_TIMEOUT_S)
                except TimeoutError:
                    pool.terminate()

    async def execute(self, sql: str, *args: object) -> int:
        async with self._connection() as conn:
            with self._translated("statement"):
                status = await conn.execute(sql, *args)
        return _rows_affected(cast(str, status))

    async def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]], *, unique: str | None = None
    ) -> None:
        placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}){_skip_existing(unique)}"
        async with self._connection() as conn:
            with self._translated("batch"):
                # asyncpg runs executemany as one transaction, its rows pipelined.
                await conn.executemany(sql, rows)

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        async with self._connection() as conn:
            with self._translated("query"):
                records = await conn.fetch(sql, *args)
        return [dict(r) for r in records]

    async def run_transaction(self, statements: Sequence[Statement]) -> list[int]:
        counts: list[int] = []
        async with self._connection() as conn:
            with self._translated("transaction"):
                async with conn.transaction():
                    for sql, args in statements:
                        counts.append(_rows_affected(await conn.execute(sql, *args)))
        return counts

    async def migrate(self, statements: Sequence[str]) -> None:
        # Concurrent CREATE TABLE IF NOT EXISTS can still collide in PostgreSQL's
        # catalog; a transaction-scoped advisory lock makes replicas take turns.
        await self.run_transaction(
            [("SELECT pg_advisory_xact_lock($1)", (_MIGRATION_LOCK,)), *((sql, ()) for sql in statements)]
        )
