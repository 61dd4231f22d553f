"""Schemas that grow in numbered steps, shared by every table family that needs one.

A counter row (``<table>.version``) says how many steps have run. Two processes starting
together may both see a step as pending and run it one after the other
(``Database.migrate`` serialises them), so every step must be idempotent (``IF NOT
EXISTS``) or, where the SQL has no such form (SQLite's ``ADD COLUMN``), fail harmlessly
once the other process has run it: a failed step whose number the schema has reached
meanwhile counts as done. Each step and its bump commit together.
"""

from __future__ import annotations

from collections.abc import Sequence

from tollway.storage.database import Database, StorageError


async def migrate_in_steps(db: Database, counter: str, steps: Sequence[Sequence[str]]) -> None:
    """Run the steps of ``steps`` that ``counter`` (a table name) has not counted yet.

    A schema that is current is only read: the migration's write lock would make a CLI
    command that only lists wait behind the gateway's writes (SQLite has one writer)."""
    try:
        if await _version(db, counter) >= len(steps):
            return
    except StorageError:
        pass  # no counter yet: a new database
    await db.migrate(
        (
            f"CREATE TABLE IF NOT EXISTS {counter} (id INTEGER PRIMARY KEY, version BIGINT NOT NULL)",
            f"INSERT INTO {counter} (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
        )
    )
    version = await _version(db, counter)
    for number, step in enumerate(steps, start=1):
        if number > version:
            bump = f"UPDATE {counter} SET version = {number} WHERE id = 1 AND version < {number}"
            try:
                await db.migrate((*step, bump))
            except StorageError:
                if await _version(db, counter) < number:
                    raise


async def _version(db: Database, counter: str) -> int:
    rows = await db.fetch(f"SELECT version FROM {counter} WHERE id = 1")
    return int(rows[0]["version"]) if rows else 0
