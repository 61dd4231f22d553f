"""Which consumer holds each file and batch (consumers/holdings.py), on SQLite and on
PostgreSQL: the first consumer recorded for an id keeps it, ids of one kind are apart
from the other's, and a page's worth of ids is answered past SQLite's bound on values."""

from __future__ import annotations

from tollway.consumers.holdings import Holdings
from tollway.storage import Database


async def test_an_id_stays_with_the_first_consumer_recorded_for_it(db: Database) -> None:
    holdings = Holdings(db)
    await holdings.migrate()
    await holdings.migrate()  # idempotent: every replica runs it at start
    await holdings.add("file", ["file-1", "file-2"], "ann")
    await holdings.add("file", ["file-2", "file-3"], "bob")
    assert await holdings.owners("file", ["file-1", "file-2", "file-3", "file-4"]) == {
        "file-1": "ann",
        "file-2": "ann",
        "file-3": "bob",
    }
    assert await holdings.owners("batch", ["file-1"]) == {}


async def test_a_long_page_of_ids_is_answered_whole(db: Database) -> None:
    holdings = Holdings(db)
    await holdings.migrate()
    ids = [f"file-{n}" for n in range(1200)]
    await holdings.add("file", ids[::2], "ann")
    owners = await holdings.owners("file", ids)
    assert sorted(owners) == sorted(ids[::2]) and set(owners.values()) == {"ann"}
