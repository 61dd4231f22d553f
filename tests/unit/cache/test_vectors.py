"""The semantic cache's vectors (cache/vectors.py) on SQLite and PostgreSQL: what one
process stores another finds, only within a partition, only while it lives."""

from __future__ import annotations

import numpy as np

from tollway.cache.vectors import SemanticIndex, Vector, VectorTable, unit
from tollway.storage import Database


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def vec(*values: float) -> Vector:
    v = unit(values)
    assert v is not None
    return v


async def index(db: Database, clock: Clock | None = None, **options: object) -> SemanticIndex:
    table = VectorTable(db)
    await table.migrate()
    return SemanticIndex(table, "ns:", sync_s=0, clock=clock or Clock(), **options)  # type: ignore[arg-type]


async def test_what_one_process_stores_another_finds_with_its_similarity(db: Database) -> None:
    one, two = await index(db), await index(db)
    await two.sync()  # the second process started before the entry was stored
    await one.add("p", vec(1, 0, 0), b"answer", 0)
    found = await two.nearest("p", vec(1, 0.1, 0))
    assert found is not None
    assert found[1] > 0.99 and await two.answer(found[0]) == b"answer"


async def test_the_nearest_of_several_is_chosen_and_partitions_stay_apart(db: Database) -> None:
    idx = await index(db)
    await idx.add("p", vec(1, 0, 0), b"x", 0)
    await idx.add("p", vec(0, 1, 0), b"y", 0)
    await idx.add("q", vec(0, 0, 1), b"z", 0)
    found = await idx.nearest("p", vec(0.1, 1, 0))
    assert found is not None and await idx.answer(found[0]) == b"y"
    found = await idx.nearest("p", vec(0, 0, 1))
    assert found is not None and await idx.answer(found[0]) in (b"x", b"y") and found[1] < 0.01
    assert await idx.nearest("nowhere", vec(1, 0, 0)) is None


async def test_an_entry_past_its_ttl_is_not_found_and_is_purged(db: Database) -> None:
    clock = Clock()
    idx = await index(db, clock)
    await idx.add("p", vec(1, 0), b"short", 60)
    assert await idx.nearest("p", vec(1, 0)) is not None
    clock.now += 61
    assert await idx.nearest("p", vec(1, 0)) is None
    other = await index(db, clock)  # a process starting now reads only live rows
    assert await other.nearest("p", vec(1, 0)) is None
    rows = await db.fetch("SELECT COUNT(*) AS n FROM ai_cache_vectors")
    assert int(rows[0]["n"]) == 0  # the first read past the minute purged it


async def test_memory_holds_at_most_max_entries_the_oldest_going_first(db: Database) -> None:
    clock = Clock()
    idx = await index(db, clock, max_entries=10)
    rng = np.random.default_rng(1)
    stored = []
    for i in range(15):
        clock.now += 1
        v = unit(rng.standard_normal(8))
        assert v is not None
        stored.append(v)
        await idx.add("p", v, str(i).encode(), 0)
    assert len(idx) <= 10
    newest = await idx.nearest("p", stored[-1])
    assert newest is not None and await idx.answer(newest[0]) == b"14"
    oldest = await idx.nearest("p", stored[0])
    assert oldest is None or oldest[1] < 0.999  # forgotten in memory (the table still has it)


async def test_vectors_of_another_size_are_not_compared(db: Database) -> None:
    idx = await index(db)
    await idx.add("p", vec(1, 0, 0), b"three", 0)
    assert await idx.nearest("p", vec(1, 0)) is None
