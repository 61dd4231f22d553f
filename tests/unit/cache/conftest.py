"""Fixtures of the cache store tests: an empty database, SQLite and PostgreSQL; Redis."""

from __future__ import annotations

from tests.support.database_support import db, db_url  # noqa: F401  (fixtures)
from tests.support.redis_support import redis_prefix, redis_url  # noqa: F401  (fixtures)
