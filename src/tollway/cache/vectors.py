"""The semantic cache's vectors: kept in the database, indexed in memory in every process.

Each stored prompt is one row of ``ai_cache_vectors`` (SQLite or PostgreSQL, one schema):
its embedding as float32 bytes, the answer, when it was stored and when it expires. A
row belongs to a *namespace* (the plugin's ``cacheKeyPrefix``) and a *partition* (the
plugin's hash of scope, model and the rest of the request): only prompts of the same
partition are compared.

Every process keeps the vectors of the namespaces it serves in memory (``SemanticIndex``)
and reads the rows other replicas wrote before a lookup, at most every ``sync_s``
seconds: rows stored since the newest it has seen, less ``_OVERLAP_MS`` (a row another
replica's clock dated a little earlier, or whose transaction committed a little later,
is still found; replicas' clocks must agree within that). So a replica finds another's
entry at most ``sync_s`` after it was stored.

The nearest prompt is found by brute force: one matrix-vector product per partition
(numpy, unit vectors, so the dot product is the cosine similarity). Measured against
HNSW indexes on 100k vectors (benchmarks/README.md, "Semantic index"), it is exact, adds
a vector in microseconds, and needs no index build after a restart; a partition large
enough for the product to take a while is searched on a worker thread (numpy releases
the GIL), so the event loop goes on meanwhile. ``max_entries`` bounds the vectors held in
memory per namespace (the oldest go first); ``cacheTTL`` bounds the table (expired rows
are deleted, at most once a minute, by whichever process looks).

Database failures are logged at most once a minute and cost the lookup or the store
only: the cache then answers "no entry".
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tollway.storage import Database, StorageError

log = logging.getLogger("tollway.cache")

Vector = npt.NDArray[np.float32]

_MIGRATION = (
    """CREATE TABLE IF NOT EXISTS ai_cache_vectors (
        id BIGINT PRIMARY KEY,
        namespace TEXT NOT NULL,
        part TEXT NOT NULL,
        vector BYTEA NOT NULL,
        answer BYTEA NOT NULL,
        created_ms BIGINT NOT NULL,
        expires_ms BIGINT
    )""",
    "CREATE INDEX IF NOT EXISTS ai_cache_vectors_created ON ai_cache_vectors (namespace, created_ms)",
)
# How far back each read of new rows starts before the newest row seen (see the module).
_OVERLAP_MS = 5_000
# A partition with more numbers than this is searched on a worker thread: about 1 ms of
# work inline (100k × 384 took 9.8 ms here: benchmarks/README.md), against a hop's ~0.1 ms.
_INLINE_LIMIT = 4_000_000
_PURGE_EVERY_MS = 60_000
_WARN_EVERY_S = 60.0


def unit(values: npt.ArrayLike) -> Vector | None:
    """``values`` as a unit float32 vector; None for an empty or all-zero one."""
    v = np.asarray(values, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(v)) if v.size else 0.0
    if not norm or not np.isfinite(norm):
        return None
    out: Vector = v / np.float32(norm)
    return out


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    part: str
    vector: Vector
    created_ms: int
    expires_ms: int | None


class VectorTable:
    """The ``ai_cache_vectors`` table of one database (the runtime connects and closes it)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._migrated = False

    async def migrate(self) -> None:
        """Create the table if missing; done before the first statement of this object
        (a reload may configure the first semantic cache long after the start)."""
        if not self._migrated:
            await self.db.migrate(_MIGRATION)
            self._migrated = True

    async def insert(self, namespace: str, row: Row, answer: bytes) -> None:
        await self.migrate()
        await self.db.execute(
            "INSERT INTO ai_cache_vectors (id, namespace, part, vector, answer, created_ms, expires_ms) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            row.id,
            namespace,
            row.part,
            row.vector.tobytes(),
            answer,
            row.created_ms,
            row.expires_ms,
        )

    async def since(self, namespace: str, since_ms: int, now_ms: int, limit: int) -> list[Row]:
        """Live rows stored at or after ``since_ms``, newest first, at most ``limit``."""
        await self.migrate()
        found = await self.db.fetch(
            "SELECT id, part, vector, created_ms, expires_ms FROM ai_cache_vectors "
            "WHERE namespace = $1 AND created_ms >= $2 AND (expires_ms IS NULL OR expires_ms > $3) "
            "ORDER BY created_ms DESC LIMIT $4",
            namespace,
            since_ms,
            now_ms,
            limit,
        )
        rows = []
        for r in found:
            vector = np.frombuffer(bytes(r["vector"]), dtype=np.float32)
            rows.append(Row(int(r["id"]), r["part"], vector, int(r["created_ms"]), r["expires_ms"]))
        return rows

    async def answer(self, id: int) -> bytes | None:
        await self.migrate()
        found = await self.db.fetch("SELECT answer FROM ai_cache_vectors WHERE id = $1", id)
        return bytes(found[0]["answer"]) if found else None

    async def purge(self, now_ms: int) -> int:
        """Delete the rows that have expired; how many."""
        await self.migrate()
        return await self.db.execute(
            "DELETE FROM ai_cache_vectors WHERE expires_ms IS NOT NULL AND expires_ms <= $1", now_ms
        )


class _Partition:
    """The vectors of one partition, in a matrix with room to grow (its capacity doubles
    when full, so adding a vector copies one row)."""

    __slots__ = ("count", "created", "expires", "ids", "matrix")

    def __init__(self, dims: int) -> None:
        self.matrix: Vector = np.empty((16, dims), dtype=np.float32)
        self.ids = np.empty(16, dtype=np.int64)
        self.expires = np.empty(16, dtype=np.float64)
        self.created = np.empty(16, dtype=np.int64)
        self.count = 0

    @property
    def dims(self) -> int:
        return int(self.matrix.shape[1])

    def add(self, row: Row) -> None:
        n = self.count
        if n == len(self.ids):
            grown = 2 * n
            self.matrix = np.resize(self.matrix, (grown, self.dims))
            self.ids, self.expires, self.created = (
                np.resize(self.ids, grown),
                np.resize(self.expires, grown),
                np.resize(self.created, grown),
            )
        self.matrix[n] = row.vector
        self.ids[n] = row.id
        self.expires[n] = np.inf if row.expires_ms is None else row.expires_ms
        self.created[n] = row.created_ms
        self.count = n + 1

    def best(self, query: Vector, now_ms: int) -> tuple[int, float] | None:
        """The id and similarity of the live vector nearest ``query``."""
        n = self.count
        if not n:
            return None
        scores = self.matrix[:n] @ query
        scores[self.expires[:n] <= now_ms] = -2.0  # below any cosine
        i = int(np.argmax(scores))
        score = float(scores[i])
        return (int(self.ids[i]), score) if score > -2.0 else None

    def drop_oldest(self, k: int) -> None:
        """Forget the ``k`` vectors stored first."""
        order = np.argsort(self.created[: self.count], kind="stable")[k:]
        order.sort()  # keep them in the order they came
        for name in ("matrix", "ids", "expires", "created"):
            array = getattr(self, name)
            kept = array[order]
            grown = np.resize(kept, (max(16, 2 * len(order)), *array.shape[1:]))
            setattr(self, name, grown)
        self.count = len(order)


class SemanticIndex:
    """One namespace's vectors, in memory, kept in step with the database (see the module).

    ``clock`` gives milliseconds since the epoch (rows are dated with it)."""

    def __init__(
        self,
        table: VectorTable,
        namespace: str,
        *,
        max_entries: int = 100_000,
        sync_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table
        self.namespace = namespace
        self.max_entries = max_entries
        self.sync_s = sync_s
        self._clock = clock
        self._parts: dict[str, _Partition] = {}
        self._known: set[int] = set()
        self._newest_ms: int | None = None  # None: nothing read yet
        self._next_sync = 0.0
        self._next_purge_ms = 0
        self._syncing: asyncio.Task[None] | None = None
        self._warned = -_WARN_EVERY_S

    def __len__(self) -> int:
        return len(self._known)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # --- reading what other processes stored ----------------------------------------

    async def sync(self) -> None:
        """Read the rows stored since the last read (by any process). Concurrent lookups
        share one read; a lookup cancelled meanwhile leaves it running for the others."""
        task = self._syncing
        if task is None:
            task = self._syncing = asyncio.get_running_loop().create_task(self._read())
            task.add_done_callback(self._read_done)
        await asyncio.shield(task)

    def _read_done(self, task: asyncio.Task[None]) -> None:
        if self._syncing is task:
            self._syncing = None

    async def _read(self) -> None:
        now_ms = self._now_ms()
        since = 0 if self._newest_ms is None else self._newest_ms - _OVERLAP_MS
        try:
            rows = await self.table.since(self.namespace, since, now_ms, self.max_entries)
            if now_ms >= self._next_purge_ms:
                self._next_purge_ms = now_ms + _PURGE_EVERY_MS
                await self.table.purge(now_ms)
        except StorageError as exc:
            self._warn("reading the semantic cache's vectors", exc)
            return
        finally:
            self._next_sync = time.monotonic() + self.sync_s
        for row in reversed(rows):  # oldest first, as they were stored
            self._index(row)

    def _index(self, row: Row) -> None:
        if row.id in self._known:
            return
        part = self._parts.get(row.part)
        if part is None:
            part = self._parts[row.part] = _Partition(len(row.vector))
        elif part.dims != len(row.vector):
            return  # another embedding model's vector: not comparable
        part.add(row)
        self._known.add(row.id)
        if self._newest_ms is None or row.created_ms > self._newest_ms:
            self._newest_ms = row.created_ms
        if len(self._known) > self.max_entries:
            self._evict()

    def _evict(self) -> None:
        """Forget the oldest tenth of the vectors held (the database keeps them)."""
        excess = len(self._known) - self.max_entries + max(1, self.max_entries // 10)
        while excess > 0 and self._parts:
            oldest = min(self._parts.values(), key=lambda p: int(p.created[: p.count].min()) if p.count else 2**62)
            if not oldest.count:
                break
            k = min(excess, max(1, oldest.count // 2))
            gone = oldest.ids[np.argsort(oldest.created[: oldest.count], kind="stable")[:k]]
            self._known.difference_update(int(i) for i in gone)
            oldest.drop_oldest(k)
            excess -= k
        self._parts = {key: p for key, p in self._parts.items() if p.count}

    # --- lookups and stores ------------------------------------------------------------

    async def nearest(self, part: str, query: Vector) -> tuple[int, float] | None:
        """The id and cosine similarity of the stored prompt nearest ``query`` in
        ``part`` (a unit vector), after reading what other processes stored if due."""
        if time.monotonic() >= self._next_sync:
            await self.sync()
        partition = self._parts.get(part)
        if partition is None or partition.dims != len(query):
            return None
        now_ms = self._now_ms()
        if partition.count * partition.dims > _INLINE_LIMIT:
            return await asyncio.to_thread(partition.best, query, now_ms)
        return partition.best(query, now_ms)

    async def answer(self, id: int) -> bytes | None:
        """The answer stored with vector ``id`` (None: gone, or the database failed)."""
        try:
            return await self.table.answer(id)
        except StorageError as exc:
            self._warn("reading a semantic cache answer", exc)
            return None

    async def add(self, part: str, vector: Vector, answer: bytes, ttl_s: int) -> None:
        """Store ``answer`` under the prompt ``vector`` (a unit vector) in ``part``: in the
        database for every process, and in this one's index at once."""
        now_ms = self._now_ms()
        row = Row(secrets.randbits(63), part, vector, now_ms, now_ms + ttl_s * 1000 if ttl_s else None)
        try:
            await self.table.insert(self.namespace, row, answer)
        except StorageError as exc:
            self._warn("storing a semantic cache entry", exc)
            return
        self._index(row)

    def _warn(self, doing: str, exc: StorageError) -> None:
        now = time.monotonic()
        if now - self._warned >= _WARN_EVERY_S:
            self._warned = now
            log.warning("ai-cache: %s failed (%s); treated as no entry", doing, exc)

    async def stop(self) -> None:
        """Let a read under way end (the database is about to close)."""
        task = self._syncing
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


__all__ = ["Row", "SemanticIndex", "VectorTable", "unit"]
