"""The cache stores of one process, made on first use and kept across reloads.

ai-cache objects are rebuilt at every reload; what they stored must outlive them. So
the runtime holds one ``CacheStores`` (on ``Services``) and each ai-cache object asks it
for its namespace's stores: the same namespace (``cacheKeyPrefix``) gets the same stores.
Exact entries go to ``storage.state``: Redis when it is Redis (shared by replicas), else
a bounded in-memory store per namespace. Semantic vectors need the database (their table
is made on first use); a process without one (tests' bare services) has no semantic cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tollway.cache.answers import AnswerStore, MemoryAnswers, RedisAnswers
from tollway.state import StateStore
from tollway.state.memory import MemoryStateStore
from tollway.storage import Database

if TYPE_CHECKING:
    from tollway.cache.vectors import SemanticIndex


class CacheStores:
    def __init__(self, state: StateStore, database: Database | None = None) -> None:
        self._shared: RedisAnswers | None = None
        if not isinstance(state, MemoryStateStore):
            from tollway.state.redis import RedisStateStore  # loaded only where state is Redis

            if isinstance(state, RedisStateStore):
                self._shared = RedisAnswers(state)
        self._memory: dict[str, MemoryAnswers] = {}
        self.database = database
        self._indexes: dict[str, SemanticIndex] = {}

    @property
    def shared(self) -> bool:
        """Whether exact entries are shared with other processes (Redis)."""
        return self._shared is not None

    def answers(self, namespace: str, max_entries: int, max_bytes: int) -> AnswerStore:
        """Where ``namespace``'s exact entries live. In memory, the bounds are those of
        the config that asked last (a reload may change them)."""
        if self._shared is not None:
            return self._shared
        store = self._memory.get(namespace)
        if store is None:
            store = self._memory[namespace] = MemoryAnswers(max_entries, max_bytes)
        elif (store.max_entries, store.max_bytes) != (max_entries, max_bytes):
            store.resize(max_entries, max_bytes)
        return store

    def semantic(self, namespace: str, max_entries: int, sync_s: float) -> SemanticIndex | None:
        """``namespace``'s semantic index, or None without a database."""
        if self.database is None:
            return None
        index = self._indexes.get(namespace)
        if index is None:
            from tollway.cache.vectors import SemanticIndex, VectorTable  # numpy, only where used

            index = self._indexes[namespace] = SemanticIndex(
                VectorTable(self.database), namespace, max_entries=max_entries, sync_s=sync_s
            )
        else:
            index.max_entries, index.sync_s = max_entries, sync_s
        return index

    async def stop(self) -> None:
        """Let the indexes' reads end (before the database closes)."""
        for index in self._indexes.values():
            await index.stop()


__all__ = ["CacheStores"]
