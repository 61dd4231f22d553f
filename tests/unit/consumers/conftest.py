"""Fixtures of the consumer tests: an empty database (SQLite, PostgreSQL) and a started
directory on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.consumer_support import new_directory
from tests.support.database_support import db, db_url  # noqa: F401  (fixtures)
from tollway.consumers.directory import ConsumerDirectory
from tollway.storage import Database


@pytest.fixture
async def directory(db: Database) -> AsyncIterator[ConsumerDirectory]:  # noqa: F811
    d = new_directory(db)
    await d.start()
    yield d
    await d.stop()
