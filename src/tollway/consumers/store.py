"""Runtime consumers: keys made by the admin API or ``tollway consumers``, kept in the
database, served from memory.

    ConsumerStoreError
    ├── InvalidConsumer     a name, pattern or group the store does not take
    ├── ConsumerExists      the name is taken (an active runtime consumer, or the config's)
    ├── ConsumerNotFound    no active runtime consumer has the name
    └── ConfigConsumer      the name is a consumer from the config file: edit the file

``StorageError`` (from ``tollway.storage``) passes through unchanged: the database failed.

Keys are stored only as a hash. Every process keeps all active runtime consumers in a
dict keyed by that hash, so authenticating a request, known key or not, is a hash and a
dict lookup and never a query. To see what other processes changed, each polls one
counter row (``consumer_changes.version``, bumped in the same transaction as every add
and revoke) once per refresh interval and reloads the whole set when it moved: a key
added or revoked anywhere works or stops everywhere within about one interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Literal, TypedDict

import orjson

from tollway.config.load import LoadedConfig
from tollway.consumers.consumer import Consumer
from tollway.plugins.key_auth import KeyAuthConfig
from tollway.storage import Database, Row, Statement, StorageError

log = logging.getLogger("tollway")

KEY_PREFIX = "tw-"
REFRESH_INTERVAL_S = 1.0
# Names travel as the X-Mse-Consumer header and in /api/consumers/NAME: keep them to
# characters that are safe in both, so a name can never smuggle a header or a path.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+:-]{0,127}")
_MAX_ITEM = 200
# Aliases because ConsumerDirectory.list (the admin API's verb) hides the builtin in its class.
_Rows = list[Row]
_Counts = list[int]

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


class ConsumerInfo(TypedDict):
    """A consumer as ``GET /api/consumers`` and ``tollway consumers list`` show it: never the key."""

    name: str
    allow_models: list[str] | None
    groups: list[str]
    source: Literal["config", "runtime"]
    key_hint: str
    created_at: str | None


def new_key() -> str:
    """A fresh consumer key: ``tw-`` and 43 URL-safe characters (256 random bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    # SHA-256, not a password hash (bcrypt, scrypt): these keys carry 256 random bits, so
    # there is nothing to brute-force and no need for a slow hash or a salt, and the hash
    # runs on every request's auth path, where a deliberately slow one would cost
    # milliseconds per call.
    return hashlib.sha256(key.encode()).hexdigest()


def config_consumers(loaded: LoadedConfig) -> list[ConsumerInfo]:
    """The consumers of every key-auth instance in a config, each name once (rules
    inherit the default's consumers, so the same one appears many times)."""
    found: dict[str, ConsumerInfo] = {}
    for setup in loaded.plugins:
        if setup.name != "key-auth":
            continue
        configs = [setup.default, *(rule.config for rule in setup.rules)]
        for cfg in configs:
            if not isinstance(cfg, KeyAuthConfig):
                continue
            for c in cfg.consumers:
                found.setdefault(
                    c.name,
                    ConsumerInfo(
                        name=c.name,
                        allow_models=list(c.allow_models) if c.allow_models is not None else None,
                        groups=list(c.groups),
                        source="config",
                        key_hint=c.credential[-4:],
                        created_at=None,
                    ),
                )
    return list(found.values())


def validate(name: str, allow_models: Sequence[str] | None, groups: Sequence[str]) -> None:
    """Raise ``InvalidConsumer`` unless the name and every pattern and group are usable."""
    if not _NAME.fullmatch(name):
        raise InvalidConsumer(
            f"invalid consumer name {name!r}: 1-128 characters of letters, digits and _ . @ + : -, "
            "starting with a letter, digit or _"
        )
    for what, items in (("allow_models", allow_models or ()), ("groups", groups)):
        for item in items:
            if not item or len(item) > _MAX_ITEM or not item.isprintable():
                raise InvalidConsumer(f"invalid {what} entry {item!r}: 1-{_MAX_ITEM} printable characters")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _no_names() -> Collection[str]:
    return ()


class ConsumerDirectory:
    """All active runtime consumers of one database, in memory, kept fresh.

    ``start()`` creates the tables if needed, loads the consumers and starts the refresh
    task; ``stop()`` cancels it (the database is the caller's to close). ``add``,
    ``revoke`` and ``list`` work without ``start()`` too (the CLI uses them so, after
    ``migrate()``). ``config_names`` answers the names the config file owns (read at each
    call, so a reload is seen). ``query_count`` counts every query this object sent.
    """

    def __init__(
        self,
        db: Database,
        *,
        config_names: Callable[[], Collection[str]] = _no_names,
        refresh_interval_s: float = REFRESH_INTERVAL_S,
    ) -> None:
        self.db = db
        self.config_names = config_names
        self.refresh_interval_s = refresh_interval_s
        self.query_count = 0
        self._by_hash: dict[str, Consumer] = {}
        self._hash_of: dict[str, str] = {}  # name → key hash, to drop a revoked key at once
        self._version: int | None = None
        # Serialises reloads with local changes: a reload that read the table just before
        # a local revoke must not put the revoked key back.
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None

    # --- life cycle ---------------------------------------------------------------

    async def migrate(self) -> None:
        """Create the tables if missing (idempotent)."""
        self.query_count += 1
        await self.db.migrate(_SCHEMA)

    async def start(self) -> None:
        await self.migrate()
        await self.refresh()
        self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="consumer-directory-refresh")

    async def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.refresh_interval_s)
            try:
                await self.refresh()
            except Exception as exc:
                # Keep serving the last known consumers and keep trying: this task dying
                # would freeze every revocation made elsewhere. Say so once per outage,
                # not once a second; a database outage is expected, anything else a bug.
                if not failing:
                    if isinstance(exc, StorageError):
                        log.warning("runtime consumers: refresh failed, keeping the last known set: %s", exc)
                    else:
                        log.exception("runtime consumers: refresh failed, keeping the last known set")
                failing = True
                continue
            if failing:
                log.warning("runtime consumers: refresh works again")
            failing = False

    # --- the request path -----------------------------------------------------------

    def lookup(self, key: str) -> Consumer | None:
        """The active runtime consumer with this key, or None; memory only, no query."""
        if not key.startswith(KEY_PREFIX):
            return None
        return self._by_hash.get(hash_key(key))

    # --- changes ---------------------------------------------------------------------

    async def refresh(self) -> bool:
        """Reload the consumers if the change counter moved since the last load; say whether."""
        async with self._lock:
            rows = await self._fetch(_VERSION)
            version = int(rows[0]["version"]) if rows else 0
            if version == self._version:
                return False
            # The version is read before the rows: a change committed in between is
            # loaded now and loaded again next time, never missed.
            active = await self._fetch(_ACTIVE)
            by_hash: dict[str, Consumer] = {}
            hash_of: dict[str, str] = {}
            for row in active:
                by_hash[row["key_hash"]] = _consumer(row)
                hash_of[row["name"]] = row["key_hash"]
            self._by_hash, self._hash_of = by_hash, hash_of
            self._version = version
            return True

    async def add(
        self, name: str, allow_models: Sequence[str] | None = None, groups: Sequence[str] = ()
    ) -> tuple[Consumer, str]:
        """Make a consumer with a new key; return it and the key (shown once, kept nowhere).

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
        async with self._lock:
            inserted, _ = await self._transact([(_INSERT, args), (_BUMP, ())])
            if not inserted:
                raise ConsumerExists(f"consumer {name!r} exists")
            consumer = Consumer(name, tuple(models) if models is not None else None, tuple(groups), "runtime")
            self._forget(name)
            self._by_hash[key_hash] = consumer
            self._hash_of[name] = key_hash
        return consumer, key

    async def revoke(self, name: str) -> None:
        """Revoke the active runtime consumer with this name: its key stops working here
        at once, elsewhere at the next refresh.

        Raises ``ConfigConsumer`` when only the config file has the name, else
        ``ConsumerNotFound`` when no active runtime consumer has it.
        """
        async with self._lock:
            revoked, _ = await self._transact([(_REVOKE, (time.time(), name)), (_BUMP, ())])
            if revoked:
                self._forget(name)
                return
        if name in self.config_names():
            raise ConfigConsumer(f"consumer {name!r} comes from the config file; remove it there")
        raise ConsumerNotFound(f"no runtime consumer named {name!r}")

    async def list(self) -> list[ConsumerInfo]:
        """The active runtime consumers, oldest first, read from the database."""
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

    # --- internals ----------------------------------------------------------------------

    def _forget(self, name: str) -> None:
        old = self._hash_of.pop(name, None)
        if old is not None:
            self._by_hash.pop(old, None)

    async def _fetch(self, sql: str) -> _Rows:
        self.query_count += 1
        return await self.db.fetch(sql)

    async def _transact(self, statements: Sequence[Statement]) -> _Counts:
        self.query_count += 1
        return await self.db.run_transaction(statements)


def _consumer(row: Row) -> Consumer:
    models = orjson.loads(row["allow_models"]) if row["allow_models"] is not None else None
    return Consumer(
        row["name"], tuple(models) if models is not None else None, tuple(orjson.loads(row["groups"])), "runtime"
    )
