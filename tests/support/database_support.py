"""An empty database for each test, on SQLite and on PostgreSQL: the ``db_url`` and ``db``
fixtures of the consumer and storage tests (their packages' conftest.py take them from
here).

PostgreSQL tests use the ``test`` database on 127.0.0.1:5432, each in a schema of its own
that is dropped afterwards. Without a reachable server they skip, except under ``CI=true``,
where they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from tollway.storage import Database, open_database

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


async def _pg_admin() -> Any:
    try:
        return await asyncpg.connect(PG_URL, timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL not reachable at {PG_URL}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database URL for an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tollway.db'}"
        return
    admin = await _pg_admin()
    schema = f"tw_test_{secrets.token_hex(6)}"
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?search_path={schema}"
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


@pytest.fixture
async def db(db_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    database = open_database(db_url, tmp_path)
    await database.connect()
    yield database
    await database.close()
