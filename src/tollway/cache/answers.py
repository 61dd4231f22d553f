"""Exact cache entries: the answer stored under a request's key.

``MemoryAnswers`` keeps them in this process, bounded by a number of entries and a
number of bytes (keys and values counted), the least recently used going first when
either bound is passed; an entry larger than the whole byte bound is not kept at all.
``RedisAnswers`` keeps them in ``storage.state``'s Redis, shared by every worker and
replica; there Redis's own memory policy bounds them (``maxmemory`` with an LRU policy).

Both forget an entry once its time to live has passed (0: never). A store that cannot
answer raises ``StateUnavailable`` (Redis down), never a library's error.
"""

from __future__ import annotations

import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

_EXPIRY = struct.Struct("<d")

if TYPE_CHECKING:
    # Imported only by a store that uses Redis (redis-py loads much at import).
    from tollway.state.redis import RedisStateStore


class AnswerStore(Protocol):
    async def get(self, key: str) -> bytes | None:
        """The answer stored under ``key``, or None (never stored, evicted, expired)."""
        ...

    async def put(self, key: str, answer: bytes, ttl_s: int) -> None:
        """Store ``answer`` under ``key`` for ``ttl_s`` seconds (0: until evicted)."""
        ...


class MemoryAnswers:
    """This process's entries, least recently used first out (see the module)."""

    __slots__ = ("_bytes", "_clock", "_entries", "max_bytes", "max_entries")

    def __init__(self, max_entries: int, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        # key → the expiry on ``clock`` (a double; 0: never) followed by the answer: one
        # bytes object, which the garbage collector does not track (a tuple per entry
        # would be thousands of objects for every full collection to walk).
        self._entries: OrderedDict[str, bytes] = OrderedDict()
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

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        (expires,) = _EXPIRY.unpack_from(entry)
        if expires and expires <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry[_EXPIRY.size :]

    async def put(self, key: str, answer: bytes, ttl_s: int) -> None:
        size = len(key) + len(answer)
        if size > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = _EXPIRY.pack(self._clock() + ttl_s if ttl_s else 0.0) + answer
        self._bytes += size
        self._shrink()

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key)
        self._bytes -= len(key) + len(entry) - _EXPIRY.size

    def _shrink(self) -> None:
        while self._entries and (len(self._entries) > self.max_entries or self._bytes > self.max_bytes):
            key, entry = self._entries.popitem(last=False)
            self._bytes -= len(key) + len(entry) - _EXPIRY.size


class RedisAnswers:
    """Entries in Redis under the state store's key prefix (see the module)."""

    __slots__ = ("_store",)

    def __init__(self, store: RedisStateStore) -> None:
        self._store = store

    async def get(self, key: str) -> bytes | None:
        return await self._store.get_bytes(key)

    async def put(self, key: str, answer: bytes, ttl_s: int) -> None:
        await self._store.set_bytes(key, answer, ttl_s * 1000)


__all__ = ["AnswerStore", "MemoryAnswers", "RedisAnswers"]
