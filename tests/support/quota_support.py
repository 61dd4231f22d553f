"""Helpers for the quota ledger tests: a real database behind a switch, and a state store
made to lose its quotas as a flushed Redis does."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence

from tollway.state import StateStore
from tollway.state.memory import MemoryStateStore
from tollway.state.redis import RedisStateStore
from tollway.storage import Database, Row, Statement, StorageError


class SwitchedDatabase(Database):
    """A real database with a switch in front: ``down`` fails every operation as an
    unreachable database does, ``hold`` (an event) keeps each one waiting until set,
    ``refuse`` lists values the database refuses as data it cannot hold. ``calls``
    counts the operations that reached the switch, by method."""

    def __init__(self, inner: Database) -> None:
        self.inner = inner
        self.dialect = inner.dialect
        self.down = False
        self.hold: asyncio.Event | None = None
        self.refuse: set[object] = set()
        self.calls: Counter[str] = Counter()

    async def _gate(self, method: str, args: Sequence[object]) -> None:
        self.calls[method] += 1
        if self.hold is not None:
            await self.hold.wait()
        if self.down:
            raise StorageError(f"{self.describe()}: {method} failed: down", unreachable=True)
        if any(a in self.refuse for a in args):
            raise StorageError(f"{self.describe()}: {method} failed: refused", refused=True)

    def describe(self) -> str:
        return self.inner.describe()

    async def connect(self) -> None:
        await self.inner.connect()

    async def close(self) -> None:
        await self.inner.close()

    async def execute(self, sql: str, *args: object) -> int:
        await self._gate("execute", args)
        return await self.inner.execute(sql, *args)

    async def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]], *, unique: str | None = None
    ) -> None:
        await self._gate("insert_rows", [v for row in rows for v in row])
        await self.inner.insert_rows(table, columns, rows, unique=unique)

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        await self._gate("fetch", args)
        return await self.inner.fetch(sql, *args)

    async def run_transaction(self, statements: Sequence[Statement]) -> list[int]:
        await self._gate("run_transaction", [v for _, args in statements for v in args])
        return await self.inner.run_transaction(statements)

    async def migrate(self, statements: Sequence[str]) -> None:
        await self._gate("migrate", ())
        await self.inner.migrate(statements)


async def forget_quotas(store: StateStore) -> None:
    """Make ``store`` lose every quota, as a Redis flushed or restarted empty does (only
    the store's own keys: the shared Redis serves other tests too)."""
    if isinstance(store, MemoryStateStore):
        store._quotas.clear()
        return
    assert isinstance(store, RedisStateStore)
    keys = [k async for k in store.client.scan_iter(match=store.key_prefix + "*", count=1000)]
    if keys:
        await store.client.delete(*keys)


__all__ = ["SwitchedDatabase", "forget_quotas"]
