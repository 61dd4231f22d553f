"""Runtime consumers in the database: keys made by the admin API or ``tollway consumers``.

    ConsumerStoreError
    ├── InvalidConsumer     a name, pattern or group the store does not take
    ├── ConsumerExists      the name is taken (an active runtime consumer, or the config's)
    ├── ConsumerNotFound    no active runtime consumer has the name
    └── ConfigConsumer      the name is a consumer from the config file: edit the file

``StorageError`` (from ``tollway.storage``) passes through unchanged: the database failed.

Keys are stored only as a hash (``keys.hash_key``). Every add and revoke bumps one
counter row (``consumer_changes.version``) in the same transaction, so a process that
serves consumers from memory (``directory``) learns that something changed with one
small query.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime

import orjson

from tollway.consumers.consumer import Consumer, ConsumerInfo
from tollway.consumers.keys import hash_key, new_key
from tollway.storage import Database, Row, Statement

# Names travel as the X-Mse-Consumer header and in /api/consumers/NAME: keep them to
# characters that are safe in both, so a name can never smuggle a header or a path.
NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.@+:-]{0,127}"
_NAME = re.compile(NAME_PATTERN)
# The longest allow_models pattern or group name.
MAX_ITEM = 200
# Aliases because ConsumerStore.list (the admin API's verb) hides the builtin in its class.
_Rows = list[Row]
_Counts = list[int]
_Active = list[tuple[str, Consumer]]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS consumers (
        name TEXT PRIMARY KEY,
        key_hash TEXT NOT NULL UNIQUE,
        key_hint TEXT NOT NULL,
        allow_models TEXT,
        groups TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION
    )""",
    "CREATE TABLE IF NOT EXISTS consumer_changes (id INTEGER PRIMARY KEY, version BIGINT NOT NULL)",
    "INSERT INTO consumer_changes (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
)
# A revoked name may be taken again: the upsert reuses its row, but never an active one
# (then it changes nothing, and the caller learns the name exists from the row count).
_INSERT = """
    INSERT INTO consumers (name, key_hash, key_hint, allow_models, groups, created_at, revoked_at)
    VALUES ($1, $2, $3, $4, $5, $6, NULL)
    ON CONFLICT (name) DO UPDATE SET
        key_hash = excluded.key_hash, key_hint = excluded.key_hint,
        allow_models = excluded.allow_models, groups = excluded.groups,
        created_at = excluded.created_at, revoked_at = NULL
    WHERE consumers.revoked_at IS NOT NULL
"""
_REVOKE = "UPDATE consumers SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL"
_BUMP = "UPDATE consumer_changes SET version = version + 1 WHERE id = 1"
_VERSION = "SELECT version FROM consumer_changes WHERE id = 1"
_ACTIVE = """
    SELECT name, key_hash, key_hint, allow_models, groups, created_at
    FROM consumers WHERE revoked_at IS NULL ORDER BY created_at, name
"""


class ConsumerStoreError(Exception):
    """A consumer operation the store refuses; the message is fit for the operator."""


class InvalidConsumer(ConsumerStoreError):
    pass


class ConsumerExists(ConsumerStoreError):
    pass


class ConsumerNotFound(ConsumerStoreError):
    pass


class ConfigConsumer(ConsumerStoreError):
    pass


def validate(name: str, allow_models: Sequence[str] | None, groups: Sequence[str]) -> None:
    """Raise ``InvalidConsumer`` unless the name and every pattern and group are usable."""
    if not _NAME.fullmatch(name):
        raise InvalidConsumer(
            f"invalid consumer name {name!r}: 1-128 characters of letters, digits and _ . @ + : -, "
            "starting with a letter, digit or _"
        )
    for what, items in (("allow_models", allow_models or ()), ("groups", groups)):
        for item in items:
            if not item or len(item) > MAX_ITEM or not item.isprintable():
                raise InvalidConsumer(f"invalid {what} entry {item!r}: 1-{MAX_ITEM} printable characters")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _no_names() -> Collection[str]:
    return ()


def _consumer(row: Row) -> Consumer:
    models = orjson.loads(row["allow_models"]) if row["allow_models"] is not None else None
    return Consumer(
        row["name"], tuple(models) if models is not None else None, tuple(orjson.loads(row["groups"])), "runtime"
    )


class ConsumerStore:
    """The runtime consumers of one database. ``config_names`` answers the names the
    config file owns (asked at each call, so a reload is seen); they cannot be taken.
    ``query_count`` counts every query this object sent."""

    def __init__(self, db: Database, *, config_names: Callable[[], Collection[str]] = _no_names) -> None:
        self.db = db
        self.config_names = config_names
        self.query_count = 0

    async def migrate(self) -> None:
        """Create the tables if missing (idempotent)."""
        self.query_count += 1
        await self.db.migrate(_SCHEMA)

    async def version(self) -> int:
        """The change counter: it moves with every add and revoke, anywhere."""
        rows = await self._fetch(_VERSION)
        return int(rows[0]["version"]) if rows else 0

    async def active(self) -> _Active:
        """Every active runtime consumer with its key's hash, oldest first."""
        return [(row["key_hash"], _consumer(row)) for row in await self._fetch(_ACTIVE)]

    async def add(
        self, name: str, allow_models: Sequence[str] | None = None, groups: Sequence[str] = ()
    ) -> tuple[Consumer, str, str]:
        """Make a consumer with a new key; return it, the key (shown once, kept nowhere)
        and the key's hash.

        Raises ``InvalidConsumer``, or ``ConsumerExists`` when an active runtime consumer
        or a config consumer has the name (a revoked name may be taken again).
        """
        validate(name, allow_models, groups)
        if name in self.config_names():
            raise ConsumerExists(f"consumer {name!r} exists in the config file")
        key = new_key()
        key_hash = hash_key(key)
        models = list(allow_models) if allow_models is not None else None
        args = (
            name,
            key_hash,
            key[-4:],
            orjson.dumps(models).decode() if models is not None else None,
            orjson.dumps(list(groups)).decode(),
            time.time(),
        )
        inserted, _ = await self._transact([(_INSERT, args), (_BUMP, ())])
        if not inserted:
            raise ConsumerExists(f"consumer {name!r} exists")
        consumer = Consumer(name, tuple(models) if models is not None else None, tuple(groups), "runtime")
        return consumer, key, key_hash

    async def revoke(self, name: str) -> None:
        """Revoke the active runtime consumer with this name.

        Raises ``ConfigConsumer`` when only the config file has the name, else
        ``ConsumerNotFound`` when no active runtime consumer has it.
        """
        revoked, _ = await self._transact([(_REVOKE, (time.time(), name)), (_BUMP, ())])
        if revoked:
            return
        if name in self.config_names():
            raise ConfigConsumer(f"consumer {name!r} comes from the config file; remove it there")
        raise ConsumerNotFound(f"no runtime consumer named {name!r}")

    async def list(self) -> list[ConsumerInfo]:
        """The active runtime consumers, oldest first, as listings show them."""
        return [
            ConsumerInfo(
                name=row["name"],
                allow_models=orjson.loads(row["allow_models"]) if row["allow_models"] is not None else None,
                groups=orjson.loads(row["groups"]),
                source="runtime",
                key_hint=row["key_hint"],
                created_at=_iso(row["created_at"]),
            )
            for row in await self._fetch(_ACTIVE)
        ]

    async def _fetch(self, sql: str) -> _Rows:
        self.query_count += 1
        return await self.db.fetch(sql)

    async def _transact(self, statements: Sequence[Statement]) -> _Counts:
        self.query_count += 1
        return await self.db.run_transaction(statements)
