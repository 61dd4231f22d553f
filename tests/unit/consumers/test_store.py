"""Runtime consumers in the database (consumers/store.py), driven through the directory as
the gateway drives them: unique keys, taken and invalid names, what a listing shows, and a
table that never holds a key in clear; each test on SQLite and on PostgreSQL.

PostgreSQL tests use the ``test`` database on 127.0.0.1:5432, each in a schema of its own
that is dropped afterwards. Without a reachable server they skip, except under ``CI=true``,
where they fail.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from tollway.consumers.directory import ConsumerDirectory
from tollway.consumers.store import (
    ConfigConsumer,
    ConsumerExists,
    ConsumerNotFound,
    InvalidConsumer,
)


async def _raw_rows(db_url: str, tmp_path: Path) -> list[tuple[Any, ...]]:
    """Every row of ``consumers``, read around Tollway's own database layer."""
    if db_url.startswith("sqlite:///"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        try:
            return conn.execute("SELECT * FROM consumers").fetchall()
        finally:
            conn.close()
    pg = await asyncpg.connect(db_url)
    try:
        return [tuple(r) for r in await pg.fetch("SELECT * FROM consumers")]
    finally:
        await pg.close()


async def test_keys_are_unique(directory: ConsumerDirectory) -> None:
    keys = {(await directory.add(f"c{i}"))[1] for i in range(20)}
    assert len(keys) == 20


async def test_a_taken_name_is_refused(directory: ConsumerDirectory) -> None:
    await directory.add("alice")
    with pytest.raises(ConsumerExists):
        await directory.add("alice")
    with pytest.raises(ConsumerExists):
        await directory.add("consumer1")  # a config consumer's name


async def test_revoking_a_config_or_unknown_consumer_is_refused(directory: ConsumerDirectory) -> None:
    with pytest.raises(ConfigConsumer):
        await directory.revoke("consumer1")
    with pytest.raises(ConsumerNotFound):
        await directory.revoke("nobody")


@pytest.mark.parametrize(
    ("name", "allow_models", "groups"),
    [
        ("", None, []),
        ("a b", None, []),
        ("x\nX-Evil: 1", None, []),
        ("a" * 129, None, []),
        ("ok", [""], []),
        ("ok", None, ["bad\ngroup"]),
    ],
)
async def test_invalid_consumers_are_refused(
    directory: ConsumerDirectory, name: str, allow_models: list[str] | None, groups: list[str]
) -> None:
    with pytest.raises(InvalidConsumer):
        await directory.add(name, allow_models, groups)


async def test_list_shows_active_consumers_without_keys(directory: ConsumerDirectory) -> None:
    _, key_a = await directory.add("alice", ["gpt-4o*"], ["team-a"])
    _, key_b = await directory.add("bob")
    await directory.add("carol")
    await directory.revoke("carol")
    listed = await directory.list()
    assert [c["name"] for c in listed] == ["alice", "bob"]
    alice, bob = listed
    assert alice["allow_models"] == ["gpt-4o*"] and alice["groups"] == ["team-a"]
    assert bob["allow_models"] is None and bob["groups"] == []
    assert alice["key_hint"] == key_a[-4:] and bob["key_hint"] == key_b[-4:]
    assert all(c["source"] == "runtime" for c in listed)
    assert alice["created_at"] is not None and alice["created_at"].endswith("Z")
    assert key_a not in repr(listed) and key_b not in repr(listed)


async def test_an_expiry_stored_past_year_9999_still_lists(directory: ConsumerDirectory) -> None:
    """A row an earlier release let in (an instant past year 9999 in UTC) is shown at the
    end of the range; the listing and the detail answer."""
    await directory.add("far", expires_at=253_402_318_800.0 + 18_000)
    (far,) = [c for c in await directory.list() if c["name"] == "far"]
    assert far["expires_at"] == "9999-12-31T23:59:59Z"
    detail = await directory.edit("far", {"max_parallel": 2})
    assert detail["expires_at"] == "9999-12-31T23:59:59Z"


async def test_the_table_never_holds_a_key_in_clear(directory: ConsumerDirectory, db_url: str, tmp_path: Path) -> None:
    _, key = await directory.add("alice", ["gpt-4o*"], ["team-a"])
    rows = await _raw_rows(db_url, tmp_path)
    assert len(rows) == 1
    assert all(key not in str(value) for value in rows[0])
    assert hashlib.sha256(key.encode()).hexdigest() in rows[0]


async def test_a_consumer_held_to_some_tools_is_no_key_to_a_release_that_cannot_hold_it(
    directory: ConsumerDirectory, db_url: str, tmp_path: Path
) -> None:
    """A release from before runtime ``allow_tools`` reads the table by its key hashes and
    knows no tool list: in a rolling upgrade, or after going back, it served such a
    consumer every tool (an upgrade judge's High). Its stored hash is marked so that no
    key matches it there; here the key works, through rotations and edits, and the mark
    goes with the tool list."""

    async def hashes() -> tuple[str, str | None]:
        if db_url.startswith("sqlite:///"):
            conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
            try:
                key_hash, old_key_hash = conn.execute(
                    "SELECT key_hash, old_key_hash FROM consumers WHERE name = 'agent'"
                ).fetchone()
                return key_hash, old_key_hash
            finally:
                conn.close()
        pg = await asyncpg.connect(db_url)
        try:
            row = await pg.fetchrow("SELECT key_hash, old_key_hash FROM consumers WHERE name = 'agent'")
            return row["key_hash"], row["old_key_hash"]
        finally:
            await pg.close()

    _, key = await directory.add("agent", allow_tools={"tools": ["echo"]})
    sha = hashlib.sha256(key.encode()).hexdigest()
    assert await hashes() == ("tools:" + sha, None)
    found = directory.lookup(key)
    assert found is not None and found.tool_patterns("tools") == ("echo",)
    new_key = await directory.rotate("agent", grace_s=60)
    new_sha = hashlib.sha256(new_key.encode()).hexdigest()
    assert await hashes() == ("tools:" + new_sha, "tools:" + sha)
    assert directory.lookup(key) is not None and directory.lookup(new_key) is not None  # (the old key's grace)
    await directory.edit("agent", {"allow_tools": None})  # every tool: any release may serve it
    assert await hashes() == (new_sha, sha)
    await directory.refresh()
    assert directory.lookup(new_key) is not None
    await directory.edit("agent", {"allow_tools": {"tools": []}})
    assert await hashes() == ("tools:" + new_sha, "tools:" + sha)
    await directory.revoke("agent")
    rows = await _raw_rows(db_url, tmp_path)
    assert "tools" not in str([v for v in rows[0] if isinstance(v, str) and v.startswith("{")])  # (cleared)
