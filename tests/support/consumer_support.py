"""Consumer directories as the consumer tests build them: a short refresh interval, and one
config consumer's name (``consumer1``) taken."""

from __future__ import annotations

from tollway.consumers.directory import ConsumerDirectory
from tollway.consumers.store import ConsumerStore
from tollway.storage import Database

CONFIG_NAMES = frozenset({"consumer1"})


def new_directory(database: Database) -> ConsumerDirectory:
    return ConsumerDirectory(ConsumerStore(database, config_names=lambda: CONFIG_NAMES), refresh_interval_s=0.1)
