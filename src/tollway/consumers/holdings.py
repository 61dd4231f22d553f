"""What each consumer holds at the providers: the files, batches, responses,
conversations, vector stores and containers it created (Gemini's cached contents and
file search stores too).

A provider keeps one account's files, batches and stored responses together, whoever
made them; the gateway holds them apart (SPEC §9). Each id the provider gave a
consumer's upload, batch, response, conversation, vector store or container is kept
here, with the consumer's name, in the database every replica shares, so that the proxy
can answer another consumer's fetch with 404 and filter its lists
(``tollway.proxy.ownership``, ``response_owners``).

One table, ``consumer_objects``: an id belongs to the first consumer recorded for it
(``ON CONFLICT DO NOTHING``), so no later call can take it over. ``StorageError`` (from
``tollway.storage``) passes through: the database failed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Literal

from tollway.storage import Database

# What the provider made: an uploaded (or batch output) file, an upload in progress
# (OpenAI's Uploads API), a batch (OpenAI's, or an Anthropic message batch), a stored
# response (the Responses API's), a conversation (OpenAI's Conversations API), a
# vector store or a container (a code interpreter's files), a fine-tuning job; an item of a
# stored response (its output: a message, a reasoning item, a tool call); Gemini's cached
# contents and file search stores (its vector stores).
Kind = Literal[
    "file", "upload", "batch", "response", "conversation", "vector_store", "container", "fine_tuning_job", "item",
    "cached_content", "file_search_store",
]  # fmt: skip

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS consumer_objects (
        kind TEXT NOT NULL,
        object_id TEXT NOT NULL,
        consumer TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (kind, object_id)
    )""",
)
_INSERT = """
    INSERT INTO consumer_objects (kind, object_id, consumer, created_at) VALUES ($1, $2, $3, $4)
    ON CONFLICT (kind, object_id) DO NOTHING
"""
# Ids asked about at once: a list page holds up to 10,000 files, and SQLite takes at
# most 999 bound values a statement.
_IDS_PER_QUERY = 500


class Holdings:
    """The ``consumer_objects`` table of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def migrate(self) -> None:
        """Create the table if missing (idempotent)."""
        await self.db.migrate(_SCHEMA)

    async def add(self, kind: Kind, object_ids: Iterable[str], consumer: str) -> None:
        """Record ``object_ids`` as ``consumer``'s; an id someone holds already stays theirs."""
        await self.add_each([(kind, object_id) for object_id in object_ids], consumer)

    async def add_each(self, objects: Iterable[tuple[Kind, str]], consumer: str) -> None:
        """``add`` for objects of several kinds, in one transaction."""
        now = time.time()
        statements = [(_INSERT, (kind, object_id, consumer, now)) for kind, object_id in dict.fromkeys(objects)]
        if statements:
            await self.db.run_transaction(statements)

    async def answers(self) -> None:
        """Raises ``StorageError`` unless the table can be read now (before an object is
        made that it must record)."""
        await self.db.fetch("SELECT 1 FROM consumer_objects LIMIT 1")

    async def owners(self, kind: Kind, object_ids: Iterable[str]) -> dict[str, str]:
        """The consumer holding each of ``object_ids`` that someone holds."""
        ids = list(dict.fromkeys(object_ids))
        found: dict[str, str] = {}
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start : start + _IDS_PER_QUERY]
            marks = ", ".join(f"${i}" for i in range(2, len(chunk) + 2))
            rows = await self.db.fetch(
                f"SELECT object_id, consumer FROM consumer_objects WHERE kind = $1 AND object_id IN ({marks})",
                kind,
                *chunk,
            )
            found.update((row["object_id"], row["consumer"]) for row in rows)
        return found
