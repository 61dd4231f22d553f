"""Durable storage: the database behind runtime consumers and usage records."""

from __future__ import annotations

from tollway.storage.database import Database, Row, Statement, StorageError, open_database, records_folder
from tollway.storage.folders import private_folder

__all__ = ["Database", "Row", "Statement", "StorageError", "open_database", "private_folder", "records_folder"]
