"""Runtime consumers in the database: keys made by the admin API or ``tollway consumers``.

    ConsumerStoreError
    ├── InvalidConsumer     a name, pattern or group the store does not take
    ├── ConsumerExists      the name is taken (an active runtime consumer, or the config's)
    ├── ConsumerNotFound    no active runtime consumer has the name
    └── ConfigConsumer      the name is a consumer from the config file: edit the file

``StorageError`` (from ``tollway.storage``) passes through unchanged: the database failed.

Keys are stored only as a hash (``keys.hash_key``). Every add, edit, rotation and
revoke bumps one counter row (``consumer_changes.version``) in the same transaction, so a
process that serves consumers from memory (``directory``) learns that something changed
with one small query.

A rotation keeps the replaced key's hash with the moment it stops (``old_key_hash``,
``old_key_until``): every process holds that deadline itself, so the old key stops
everywhere at the same moment without another change to learn of.

A consumer held to some MCP tools (``allow_tools``, step 4) keeps its key's hash as
``tools:<hash>``: a release from before step 4 reads no ``allow_tools`` and would serve
it every tool (in a rolling upgrade, or after going back), so it is given a hash no key
has, and refuses the key instead (401). This release reads the hash without the mark.

The schema grows in numbered steps (``tollway.storage.steps``, counted in
``consumer_schema``): step 1 is the table as the first releases made it, so a database
from one of them keeps its consumers and gains the later columns.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, NamedTuple, NoReturn

import orjson

from tollway import patterns
from tollway.consumers.consumer import Budget, Consumer, ConsumerDetail, ConsumerInfo, ConsumerListed, iso_instant
from tollway.consumers.groups import Group, named_twice
from tollway.consumers.keys import hash_key, hint_of, new_key
from tollway.storage import Database, Row, Statement
from tollway.storage.steps import migrate_in_steps

# Names travel as the X-Mse-Consumer header and in /api/consumers/NAME: keep them to
# characters that are safe in both, so a name can never smuggle a header or a path.
NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.@+:-]{0,127}"
_NAME = re.compile(NAME_PATTERN)
# The longest allow_models pattern or group name.
MAX_ITEM = 200
# Aliases because ConsumerStore.list (the admin API's verb) hides the builtin in its class.
_Rows = list[Row]
_Counts = list[int]
_Listing = list[ConsumerListed]


class ActiveKey(NamedTuple):
    """An active consumer's key hash and, after a rotation, its old key's hash and when
    that one stops (seconds since the epoch)."""

    key_hash: str
    consumer: Consumer
    old_key_hash: str | None
    old_key_until: float | None


_Active = list[ActiveKey]
# The fields an edit may change; anything else in a PATCH is refused.
EDITABLE = ("allow_models", "groups", "budget", "max_parallel", "expires_at", "metadata", "allow_tools")

_BASE = (
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
_STEPS: tuple[tuple[str, ...], ...] = (
    _BASE,
    (
        "ALTER TABLE consumers ADD COLUMN expires_at DOUBLE PRECISION",
        "ALTER TABLE consumers ADD COLUMN budget TEXT",
        "ALTER TABLE consumers ADD COLUMN max_parallel BIGINT",
        "ALTER TABLE consumers ADD COLUMN metadata TEXT",
        "ALTER TABLE consumers ADD COLUMN old_key_hash TEXT",
        "ALTER TABLE consumers ADD COLUMN old_key_until DOUBLE PRECISION",
    ),
    (
        """CREATE TABLE IF NOT EXISTS consumer_groups (
            name TEXT PRIMARY KEY,
            budget TEXT,
            max_parallel BIGINT,
            created_at DOUBLE PRECISION NOT NULL
        )""",
    ),
    # MCP tool patterns per server (JSON; NULL: every tool), as a config consumer's.
    ("ALTER TABLE consumers ADD COLUMN allow_tools TEXT",),
)
_GROUPS = "SELECT name, budget, max_parallel FROM consumer_groups ORDER BY created_at, name"
_ADD_GROUP = """
    INSERT INTO consumer_groups (name, budget, max_parallel, created_at) VALUES ($1, $2, $3, $4)
    ON CONFLICT (name) DO NOTHING
"""
_REMOVE_GROUP = "DELETE FROM consumer_groups WHERE name = $1"
# A revoked name may be taken again: the upsert reuses its row, but never an active one
# (then it changes nothing, and the caller learns the name exists from the row count).
_INSERT = """
    INSERT INTO consumers (name, key_hash, key_hint, allow_models, groups, created_at, revoked_at,
        expires_at, budget, max_parallel, metadata, old_key_hash, old_key_until, allow_tools)
    VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8, $9, $10, NULL, NULL, $11)
    ON CONFLICT (name) DO UPDATE SET
        key_hash = excluded.key_hash, key_hint = excluded.key_hint,
        allow_models = excluded.allow_models, groups = excluded.groups,
        created_at = excluded.created_at, revoked_at = NULL,
        expires_at = excluded.expires_at, budget = excluded.budget,
        max_parallel = excluded.max_parallel, metadata = excluded.metadata,
        old_key_hash = NULL, old_key_until = NULL, allow_tools = excluded.allow_tools
    WHERE consumers.revoked_at IS NOT NULL
"""
# (``allow_tools`` cleared: a release from before it, taking the name again, would keep it.)
_REVOKE = "UPDATE consumers SET revoked_at = $1, allow_tools = NULL WHERE name = $2 AND revoked_at IS NULL"
# What marks the hash of a consumer held to some MCP tools (see the module).
_HELD_TO_TOOLS = "tools:"
# The right-hand sides read the row as it was: the current key becomes the old one.
_ROTATE = """
    UPDATE consumers SET old_key_hash = key_hash, old_key_until = $1, key_hint = $3,
        key_hash = CASE WHEN allow_tools IS NULL THEN CAST($2 AS TEXT) ELSE 'tools:' || CAST($2 AS TEXT) END
    WHERE name = $4 AND revoked_at IS NULL
"""
# An edit of ``allow_tools`` marks or unmarks the hashes to match (``$N``: its value).
_MARK_HASHES = """key_hash = CASE WHEN CAST($N AS TEXT) IS NULL THEN replace(key_hash, 'tools:', '')
        ELSE 'tools:' || replace(key_hash, 'tools:', '') END,
    old_key_hash = CASE WHEN old_key_hash IS NULL OR CAST($N AS TEXT) IS NULL THEN replace(old_key_hash, 'tools:', '')
        ELSE 'tools:' || replace(old_key_hash, 'tools:', '') END"""
_BUMP = "UPDATE consumer_changes SET version = version + 1 WHERE id = 1"
_VERSION = "SELECT version FROM consumer_changes WHERE id = 1"
_COLUMNS = """name, key_hash, key_hint, allow_models, groups, created_at, expires_at, budget, max_parallel,
    metadata, old_key_hash, old_key_until, allow_tools"""
_ACTIVE = f"SELECT {_COLUMNS} FROM consumers WHERE revoked_at IS NULL ORDER BY created_at, name"
_ONE = f"SELECT {_COLUMNS} FROM consumers WHERE revoked_at IS NULL AND name = $1"


# The fields a runtime group's edit may change.
GROUP_EDITABLE = ("budget", "max_parallel")


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


def validate(
    name: str,
    allow_models: Sequence[str] | None,
    groups: Sequence[str],
    allow_tools: Mapping[str, Sequence[str]] | None = None,
) -> None:
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
    for pattern in allow_models or ():
        try:
            patterns.check(pattern)
        except ValueError as exc:  # it would fail every call the consumer makes
            raise InvalidConsumer(f"invalid allow_models entry: {exc}") from None
    for server, tools in (allow_tools or {}).items():
        for item in (server, *tools):
            if not item or len(item) > MAX_ITEM or not item.isprintable():
                raise InvalidConsumer(f"invalid allow_tools entry {item!r}: 1-{MAX_ITEM} printable characters")
        for pattern in tools:
            try:
                patterns.check(pattern)
            except ValueError as exc:
                raise InvalidConsumer(f"invalid allow_tools entry for {server!r}: {exc}") from None
    twice = named_twice(groups)
    if twice is not None:
        # Held to its budget once, not twice: a repeat is a slip, said rather than dropped.
        raise InvalidConsumer(f"groups names {twice!r} twice")


def unknown_tool_server(allow_tools: Mapping[str, object] | None, servers: Collection[str]) -> str | None:
    """Why ``allow_tools`` cannot be a runtime consumer's, or None: it names a server that
    is none of ``servers`` (the config's MCP servers), where a typo would leave the
    consumer every tool of the server meant."""
    unknown = sorted(set(allow_tools or {}) - set(servers))
    if not unknown:
        return None
    return f"no MCP server named {unknown[0]!r} (mcp_servers: {', '.join(sorted(servers)) or 'none'})"


def _bare(stored: str | None) -> str | None:
    """A stored key hash without its mark (see the module)."""
    return stored.removeprefix(_HELD_TO_TOOLS) if stored is not None else None


def _no_names() -> Collection[str]:
    return ()


def _json(value: object) -> str | None:
    return orjson.dumps(value).decode() if value is not None else None


def _loaded(text: str | None) -> Any:
    return orjson.loads(text) if text is not None else None


def _tools(allow_tools: Mapping[str, Sequence[str]] | None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((server, tuple(tools)) for server, tools in (allow_tools or {}).items())


def _consumer(row: Row) -> Consumer:
    models = _loaded(row["allow_models"])
    budget = _loaded(row["budget"])
    return Consumer(
        row["name"],
        tuple(models) if models is not None else None,
        tuple(orjson.loads(row["groups"])),
        "runtime",
        allow_tools=_tools(_loaded(row["allow_tools"])),
        expires_at=row["expires_at"],
        budget=Budget(float(budget["usd"]), budget["period"]) if budget is not None else None,
        max_parallel=int(row["max_parallel"]) if row["max_parallel"] is not None else None,
    )


def _info(row: Row) -> ConsumerInfo:
    return ConsumerInfo(
        name=row["name"],
        allow_models=_loaded(row["allow_models"]),
        groups=orjson.loads(row["groups"]),
        source="runtime",
        key_hint=row["key_hint"],
        created_at=iso_instant(row["created_at"]),
        expires_at=iso_instant(row["expires_at"]) if row["expires_at"] is not None else None,
    )


def _listed(row: Row) -> ConsumerListed:
    return ConsumerListed(
        **_info(row),
        budget=_loaded(row["budget"]),
        max_parallel=int(row["max_parallel"]) if row["max_parallel"] is not None else None,
        allow_tools=_loaded(row["allow_tools"]),
    )


def _detail(row: Row) -> ConsumerDetail:
    return ConsumerDetail(**_listed(row), metadata=_loaded(row["metadata"]))


def _group(row: Row) -> Group:
    budget = _loaded(row["budget"])
    return Group(
        row["name"],
        Budget(float(budget["usd"]), budget["period"]) if budget is not None else None,
        int(row["max_parallel"]) if row["max_parallel"] is not None else None,
        "runtime",
    )


def _column_value(field: str, value: object) -> object:
    """An edited field as its column holds it."""
    if field in ("allow_models", "groups", "budget", "metadata", "allow_tools"):
        if field == "groups" and value is None:
            return "[]"
        return _json(value)
    return value


class ConsumerStore:
    """The runtime consumers of one database. ``config_names`` answers the names the
    config file owns (asked at each call, so a reload is seen); they cannot be taken.
    ``query_count`` counts every query this object sent."""

    def __init__(self, db: Database, *, config_names: Callable[[], Collection[str]] = _no_names) -> None:
        self.db = db
        self.config_names = config_names
        self.query_count = 0

    async def migrate(self) -> None:
        """Create or upgrade the tables (idempotent; safe with replicas starting together)."""
        self.query_count += 1
        await migrate_in_steps(self.db, "consumer_schema", _STEPS)

    async def version(self) -> int:
        """The change counter: it moves with every add and revoke, anywhere."""
        rows = await self._fetch(_VERSION)
        return int(rows[0]["version"]) if rows else 0

    async def active(self) -> _Active:
        """Every active runtime consumer with its key's hash, oldest first."""
        return [
            ActiveKey(row["key_hash"].removeprefix(_HELD_TO_TOOLS), _consumer(row), _bare(row["old_key_hash"]),
                      row["old_key_until"])
            for row in await self._fetch(_ACTIVE)
        ]  # fmt: skip

    async def add(
        self,
        name: str,
        allow_models: Sequence[str] | None = None,
        groups: Sequence[str] = (),
        *,
        expires_at: float | None = None,
        budget: Budget | None = None,
        max_parallel: int | None = None,
        metadata: Mapping[str, object] | None = None,
        allow_tools: Mapping[str, Sequence[str]] | None = None,
    ) -> tuple[Consumer, str, str]:
        """Make a consumer with a new key; return it, the key (shown once, kept nowhere)
        and the key's hash.

        Raises ``InvalidConsumer``, or ``ConsumerExists`` when an active runtime consumer
        or a config consumer has the name (a revoked name may be taken again).
        """
        validate(name, allow_models, groups, allow_tools)
        if name in self.config_names():
            raise ConsumerExists(f"consumer {name!r} exists in the config file")
        key = new_key()
        key_hash = hash_key(key)
        models = list(allow_models) if allow_models is not None else None
        args = (
            name,
            _HELD_TO_TOOLS + key_hash if allow_tools is not None else key_hash,
            hint_of(key),
            orjson.dumps(models).decode() if models is not None else None,
            orjson.dumps(list(groups)).decode(),
            time.time(),
            expires_at,
            _json({"usd": budget.usd, "period": budget.period}) if budget is not None else None,
            max_parallel,
            _json(dict(metadata)) if metadata is not None else None,
            _json({server: list(tools) for server, tools in allow_tools.items()}) if allow_tools is not None else None,
        )
        inserted, _ = await self._transact([(_INSERT, args), (_BUMP, ())])
        if not inserted:
            raise ConsumerExists(f"consumer {name!r} exists")
        consumer = Consumer(
            name,
            tuple(models) if models is not None else None,
            tuple(groups),
            "runtime",
            allow_tools=_tools(allow_tools),
            expires_at=expires_at,
            budget=budget,
            max_parallel=max_parallel,
        )
        return consumer, key, key_hash

    async def rotate(self, name: str, grace_s: float = 0.0) -> tuple[str, str, float]:
        """Give the active runtime consumer a new key; the old one works ``grace_s`` more
        seconds. Return the new key (shown once), its hash and when the old key stops.

        Raises ``ConfigConsumer`` or ``ConsumerNotFound`` as ``revoke`` does.
        """
        key = new_key()
        key_hash = hash_key(key)
        until = time.time() + grace_s
        rotated, _ = await self._transact([(_ROTATE, (until, key_hash, hint_of(key), name)), (_BUMP, ())])
        if not rotated:
            self._not_runtime(name)
        return key, key_hash, until

    async def edit(self, name: str, changes: Mapping[str, object]) -> ConsumerDetail:
        """Set the fields of ``changes`` (names from ``EDITABLE``, values as the admin API
        takes them: ``budget`` a ``{"usd", "period"}`` dict, ``expires_at`` seconds since
        the epoch); return the consumer as it now is.

        Raises ``InvalidConsumer`` for an unusable pattern or group, else ``ConfigConsumer``
        or ``ConsumerNotFound`` as ``revoke`` does.
        """
        fields = [f for f in EDITABLE if f in changes]
        models = changes.get("allow_models")
        groups = changes.get("groups")
        tools = changes.get("allow_tools")
        if not _NAME.fullmatch(name):
            self._not_runtime(name)  # no consumer could have such a name
        validate(
            name,
            models if isinstance(models, list) else None,
            groups if isinstance(groups, list) else (),
            tools if isinstance(tools, dict) else None,
        )
        if fields:
            sets = ", ".join(f"{f} = ${i}" for i, f in enumerate(fields, start=1))
            if "allow_tools" in fields:
                sets += ", " + _MARK_HASHES.replace("$N", f"${fields.index('allow_tools') + 1}")
            sql = f"UPDATE consumers SET {sets} WHERE name = ${len(fields) + 1} AND revoked_at IS NULL"
            values = [_column_value(f, changes[f]) for f in fields]
            edited, _ = await self._transact([(sql, (*values, name)), (_BUMP, ())])
            if not edited:
                self._not_runtime(name)
        found = await self.get(name)
        if found is None:
            self._not_runtime(name)
        return found

    # --- runtime groups -----------------------------------------------------------------

    async def groups(self) -> list[Group]:
        """Every runtime group, oldest first."""
        return [_group(row) for row in await self._fetch(_GROUPS)]

    async def add_group(self, name: str, budget: Budget | None, max_parallel: int | None) -> Group:
        """Declare a runtime group. Raises ``InvalidConsumer`` for a bad name and
        ``ConsumerExists`` when a runtime group has the name already."""
        if not _NAME.fullmatch(name):
            raise InvalidConsumer(f"invalid group name {name!r}: 1-128 letters, digits and _ . @ + : -")
        stored = _json({"usd": budget.usd, "period": budget.period}) if budget is not None else None
        added, _ = await self._transact([(_ADD_GROUP, (name, stored, max_parallel, time.time())), (_BUMP, ())])
        if not added:
            raise ConsumerExists(f"group {name!r} exists")
        return Group(name, budget, max_parallel, "runtime")

    async def edit_group(self, name: str, changes: Mapping[str, object]) -> Group:
        """Set ``budget`` (a ``{"usd", "period"}`` dict or None) and/or ``max_parallel``.
        Raises ``ConsumerNotFound`` when no runtime group has the name."""
        fields = [f for f in GROUP_EDITABLE if f in changes]
        if fields:
            sets = ", ".join(f"{f} = ${i}" for i, f in enumerate(fields, start=1))
            sql = f"UPDATE consumer_groups SET {sets} WHERE name = ${len(fields) + 1}"
            values = [_column_value(f, changes[f]) for f in fields]
            edited, _ = await self._transact([(sql, (*values, name)), (_BUMP, ())])
            if not edited:
                raise ConsumerNotFound(f"no runtime group named {name!r}")
        found = next((g for g in await self.groups() if g.name == name), None)
        if found is None:
            raise ConsumerNotFound(f"no runtime group named {name!r}")
        return found

    async def remove_group(self, name: str) -> None:
        """Remove a runtime group (its members keep naming it, as a plain label).
        Raises ``ConsumerNotFound`` when no runtime group has the name."""
        removed, _ = await self._transact([(_REMOVE_GROUP, (name,)), (_BUMP, ())])
        if not removed:
            raise ConsumerNotFound(f"no runtime group named {name!r}")

    async def get(self, name: str) -> ConsumerDetail | None:
        """The active runtime consumer with this name, or None."""
        self.query_count += 1
        rows = await self.db.fetch(_ONE, name)
        return _detail(rows[0]) if rows else None

    async def revoke(self, name: str) -> None:
        """Revoke the active runtime consumer with this name.

        Raises ``ConfigConsumer`` when only the config file has the name, else
        ``ConsumerNotFound`` when no active runtime consumer has it.
        """
        revoked, _ = await self._transact([(_REVOKE, (time.time(), name)), (_BUMP, ())])
        if not revoked:
            self._not_runtime(name)

    def _not_runtime(self, name: str) -> NoReturn:
        if name in self.config_names():
            raise ConfigConsumer(f"consumer {name!r} comes from the config file; change it there")
        raise ConsumerNotFound(f"no runtime consumer named {name!r}")

    async def list(self) -> list[ConsumerInfo]:
        """The active runtime consumers, oldest first, as listings show them."""
        return [_info(row) for row in await self._fetch(_ACTIVE)]

    async def listed(self) -> _Listing:
        """The active runtime consumers, oldest first, as ``GET /api/consumers`` lists them."""
        return [_listed(row) for row in await self._fetch(_ACTIVE)]

    async def _fetch(self, sql: str) -> _Rows:
        self.query_count += 1
        return await self.db.fetch(sql)

    async def _transact(self, statements: Sequence[Statement]) -> _Counts:
        self.query_count += 1
        return await self.db.run_transaction(statements)
