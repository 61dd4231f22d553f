"""Exact cache entries: the answer stored under a request's key.

``MemoryAnswers`` keeps them in this process, as the entries' fields (a hit reads one
with no parse; a miss stores the answer's bytes it already holds, not a copy), bounded by a
number of entries and a number of bytes (keys and entries counted), the least recently
used going first when either bound is passed; an entry larger than the whole byte bound
is not kept at all. ``RedisAnswers`` keeps them encoded in ``storage.state``'s Redis,
shared by every worker and replica; there Redis's own memory policy bounds them
(``maxmemory`` with an LRU policy).

Both forget an entry once its time to live has passed (0: never). A store that cannot
answer raises ``StateUnavailable`` (Redis down), never a library's error; an entry Redis
holds that this version cannot read raises ``UnusableAnswer``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from tollway.cache.entry import ENTRY_OVERHEAD, EntryFields, StoredAnswer

if TYPE_CHECKING:
    # Imported only by a store that uses Redis (redis-py loads much at import).
    from tollway.state.redis import RedisStateStore


class AnswerStore(Protocol):
    async def get(self, key: str) -> StoredAnswer | None:
        """The answer stored under ``key``, or None (never stored, evicted, expired)."""
        ...

    async def put(self, key: str, answer: StoredAnswer, ttl_s: int) -> None:
        """Store ``answer`` under ``key`` for ``ttl_s`` seconds (0: until evicted)."""
        ...


class MemoryAnswers:
    """This process's entries, least recently used first out (see the module)."""

    __slots__ = ("_bytes", "_clock", "_entries", "_expiries", "max_bytes", "max_entries")

    def __init__(self, max_entries: int, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, EntryFields] = OrderedDict()
        # When the entries stored with a TTL expire (on ``clock``); most configs set none
        # (Higress's cacheTTL defaults to 0), and then this stays empty and unread.
        self._expiries: dict[str, float] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def resize(self, max_entries: int, max_bytes: int) -> None:
        """New bounds (a reload changed them); entries past them go at once."""
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._shrink()

    async def get(self, key: str) -> StoredAnswer | None:
        return self.lookup(key)

    async def put(self, key: str, answer: StoredAnswer, ttl_s: int) -> None:
        self.store(key, answer, ttl_s)

    # The same without a coroutine each: ai-cache calls these directly when its store is
    # this one (two coroutines fewer on every call it looks at).

    def lookup(self, key: str) -> StoredAnswer | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._expiries:
            expires = self._expiries.get(key)
            if expires is not None and expires <= self._clock():
                self._drop(key)
                return None
        self._entries.move_to_end(key)
        return StoredAnswer(*entry)

    def store(self, key: str, answer: StoredAnswer, ttl_s: int) -> None:
        size = _size(key, answer.payload)
        if size > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = answer.fields()
        if ttl_s:
            self._expiries[key] = self._clock() + ttl_s
        self._bytes += size
        self._shrink()

    def _drop(self, key: str) -> None:
        self._forget(key, self._entries.pop(key))

    def _forget(self, key: str, entry: EntryFields) -> None:
        self._bytes -= _size(key, entry[2])
        if self._expiries:
            self._expiries.pop(key, None)

    def _shrink(self) -> None:
        while self._entries and (len(self._entries) > self.max_entries or self._bytes > self.max_bytes):
            self._forget(*self._entries.popitem(last=False))


def _size(key: str, payload: bytes) -> int:
    """What an entry counts against the byte bound: its key, its answer's bytes and its
    other fields (about)."""
    return len(key) + len(payload) + ENTRY_OVERHEAD


class RedisAnswers:
    """Entries in Redis under the state store's key prefix (see the module)."""

    __slots__ = ("_store",)

    def __init__(self, store: RedisStateStore) -> None:
        self._store = store

    async def get(self, key: str) -> StoredAnswer | None:
        raw = await self._store.get_bytes(key)
        return StoredAnswer.decode(raw) if raw is not None else None

    async def put(self, key: str, answer: StoredAnswer, ttl_s: int) -> None:
        await self._store.set_bytes(key, answer.encode(), ttl_s * 1000)


__all__ = ["AnswerStore", "MemoryAnswers", "RedisAnswers"]
