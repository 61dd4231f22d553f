"""Fixtures of the quota ledger tests: an empty database (SQLite and PostgreSQL) and
Redis on 127.0.0.1:6379 under a key prefix of each test's own."""

from __future__ import annotations

from tests.support.database_support import db, db_url
from tests.support.redis_support import redis_prefix, redis_url

__all__ = ["db", "db_url", "redis_prefix", "redis_url"]
