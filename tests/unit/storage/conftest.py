"""Fixtures of the storage tests: an empty database, SQLite and PostgreSQL."""

from __future__ import annotations

from tests.support.database_support import db, db_url  # noqa: F401  (fixtures)
