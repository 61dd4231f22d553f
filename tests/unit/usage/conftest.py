"""The databases the usage store and writer tests run on: SQLite, and a fresh PostgreSQL
schema; and a migrated usage store on each."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.usage_support import fresh_pg_schema
from tollway.storage import open_database
from tollway.usage.store import UsageStore


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/usage.db"
    else:
        yield from fresh_pg_schema()


@pytest.fixture
async def store(database_url: str, tmp_path: Path) -> AsyncIterator[UsageStore]:
    db = open_database(database_url, tmp_path)
    await db.connect()
    s = UsageStore(db)
    await s.migrate()
    yield s
    await db.close()
