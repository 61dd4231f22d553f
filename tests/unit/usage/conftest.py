"""The databases the usage store and writer tests run on: SQLite, and a fresh PostgreSQL
schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.usage_support import fresh_pg_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/usage.db"
    else:
        yield from fresh_pg_schema()
