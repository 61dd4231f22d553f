"""The ``quota_balances`` table: the truth of every ai-quota balance, one row per quota key.

    quota_key         the plugin's key (``redis_key_prefix`` + consumer name)
    balance           what remains, counting the spends written so far
    version           management operations recorded for it (refreshes and deltas)
    refresh_version   the version of its last refresh
    updated_ms        when it last changed (milliseconds since the Unix epoch)

A management operation is one statement that moves ``version`` on by one and answers the
new version, which the state store then applies in order (``StateStore.quota_apply``).
Spends come later, in batches, each tagged with the version the state store was at when
it charged the call: a spend counts only if no refresh came after it
(``refresh_version <= its version``), since a refresh overwrote the balance it was charged
to, in the store and so here.

Every method may raise ``StorageError`` (``tollway.storage``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import NamedTuple

from tollway.storage import Database, Statement

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS quota_balances (
        quota_key TEXT PRIMARY KEY,
        balance BIGINT NOT NULL,
        version BIGINT NOT NULL,
        refresh_version BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL
    )""",
)
# In an upsert's SET, ``quota_balances.<column>`` is the row as it was (both dialects).
_REFRESH = """INSERT INTO quota_balances (quota_key, balance, version, refresh_version, updated_ms)
    VALUES ($1, $2, 1, 1, $3)
    ON CONFLICT (quota_key) DO UPDATE SET
        balance = excluded.balance,
        version = quota_balances.version + 1,
        refresh_version = quota_balances.version + 1,
        updated_ms = excluded.updated_ms
    RETURNING version"""
# A delta on a quota never set starts from 0, as in the state store.
_ADD = """INSERT INTO quota_balances (quota_key, balance, version, refresh_version, updated_ms)
    VALUES ($1, $2, 1, 0, $3)
    ON CONFLICT (quota_key) DO UPDATE SET
        balance = quota_balances.balance + excluded.balance,
        version = quota_balances.version + 1,
        updated_ms = excluded.updated_ms
    RETURNING version"""
_ADOPT = """INSERT INTO quota_balances (quota_key, balance, version, refresh_version, updated_ms)
    VALUES ($1, $2, 0, 0, $3)
    ON CONFLICT (quota_key) DO NOTHING
    RETURNING version"""
_READ = "SELECT balance, version, refresh_version FROM quota_balances WHERE quota_key = $1"
_CHARGE = """UPDATE quota_balances SET balance = balance - $1, updated_ms = $2
    WHERE quota_key = $3 AND refresh_version <= $4"""

# key -> {ledger version the store charged them in: tokens spent}
Spends = Mapping[str, Mapping[int, int]]


class Balance(NamedTuple):
    value: int
    version: int
    refresh_version: int


def _now_ms() -> int:
    return int(time.time() * 1000)


class BalanceTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def migrate(self) -> None:
        await self.db.migrate(_SCHEMA)

    async def read(self, key: str) -> Balance | None:
        rows = await self.db.fetch(_READ, key)
        if not rows:
            return None
        row = rows[0]
        return Balance(int(row["balance"]), int(row["version"]), int(row["refresh_version"]))

    async def refresh(self, key: str, value: int) -> int:
        """Set the balance; the operation's version."""
        return await self._version(_REFRESH, key, value)

    async def add(self, key: str, delta: int) -> int:
        """Move the balance by ``delta``; the operation's version."""
        return await self._version(_ADD, key, delta)

    async def adopt(self, key: str, value: int) -> bool:
        """Record a balance the state store held before the ledger did, as version 0;
        False (and nothing written) when the ledger has the key already."""
        return bool(await self.db.fetch(_ADOPT, key, value, _now_ms()))

    async def _version(self, sql: str, key: str, amount: int) -> int:
        rows = await self.db.fetch(sql, key, amount, _now_ms())
        return int(rows[0]["version"])

    async def charge(self, spends: Spends) -> None:
        """Subtract every spend, in one transaction."""
        await self.db.run_transaction(charges(spends))

    async def charge_one(self, key: str, version: int, amount: int) -> None:
        await self.db.execute(_CHARGE, amount, _now_ms(), key, version)


def charges(spends: Spends) -> list[Statement]:
    """One statement per key and version, keys in order: replicas charging the same
    rows in one order cannot deadlock each other."""
    now = _now_ms()
    return [
        (_CHARGE, (amount, now, key, version))
        for key in sorted(spends)
        for version, amount in sorted(spends[key].items())
    ]


__all__ = ["Balance", "BalanceTable", "Spends", "charges"]
