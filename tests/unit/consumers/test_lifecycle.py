"""A consumer's key over its life (consumers/store.py, directory.py): a database made by
an earlier release upgraded in place, rotation with a grace period, edits and expiry
reaching another directory on the same database; each test on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.consumer_support import new_directory
from tollway.consumers import store as store_module
from tollway.consumers.consumer import Budget
from tollway.consumers.directory import ConsumerDirectory
from tollway.consumers.keys import hash_key
from tollway.consumers.store import ConfigConsumer, ConsumerNotFound, InvalidConsumer
from tollway.storage import Database, open_database


async def _until(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not true in time"
        await asyncio.sleep(0.02)


async def test_a_database_of_the_first_schema_keeps_its_consumers(db: Database) -> None:
    # The tables exactly as releases before expiry and rotation made them, with a consumer.
    await db.migrate(store_module._BASE)
    await db.execute(
        "INSERT INTO consumers (name, key_hash, key_hint, allow_models, groups, created_at, revoked_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        "old",
        hash_key("tw-old-key"),
        "-key",
        '["gpt-4o*"]',
        '["team"]',
        1_700_000_000.0,
    )
    directory = new_directory(db)
    await directory.start()
    again = new_directory(db)  # a second replica starting on the upgraded schema
    await again.start()
    try:
        found = directory.lookup("tw-old-key")
        assert found is not None and found.allow_models == ("gpt-4o*",) and found.groups == ("team",)
        assert found.expires_at is None and found.budget is None
        detail = await directory.edit("old", {"expires_at": 4_000_000_000.0, "max_parallel": 3})
        assert detail["expires_at"] == "2096-10-02T07:06:40Z" and detail["max_parallel"] == 3
        assert detail["created_at"] == "2023-11-14T22:13:20Z"
    finally:
        await directory.stop()
        await again.stop()


async def test_rotation_keeps_the_old_key_for_its_grace_then_stops_it(
    directory: ConsumerDirectory, db: Database
) -> None:
    other = new_directory(db)
    await other.start()
    try:
        _, old = await directory.add("alice")
        await _until(lambda: other.lookup(old) is not None)
        new = await directory.rotate("alice", grace_s=1.0)
        assert new != old and new.startswith("tw-")
        assert directory.lookup(new) is not None and directory.lookup(old) is not None
        await _until(lambda: other.lookup(new) is not None)
        assert other.lookup(old) is not None  # still in its grace on the other replica
        await _until(lambda: directory.lookup(old) is None and other.lookup(old) is None)
        assert directory.lookup(new) is not None and other.lookup(new) is not None

        newer = await directory.rotate("alice")  # no grace: the old key stops at once
        assert directory.lookup(new) is None and directory.lookup(newer) is not None
        await _until(lambda: other.lookup(new) is None and other.lookup(newer) is not None)
    finally:
        await other.stop()


async def test_revoking_ends_a_grace_period_too(directory: ConsumerDirectory) -> None:
    _, old = await directory.add("alice")
    new = await directory.rotate("alice", grace_s=3600)
    await directory.revoke("alice")
    assert directory.lookup(old) is None and directory.lookup(new) is None


async def test_edits_reach_another_directory(directory: ConsumerDirectory, db: Database) -> None:
    other = new_directory(db)
    await other.start()
    try:
        _, key = await directory.add("alice", budget=Budget(5.0, "day"), metadata={"team": "a"})
        detail = await directory.edit(
            "alice",
            {"allow_models": ["m-*"], "groups": ["g1"], "expires_at": time.time() - 1, "budget": None},
        )
        assert detail["allow_models"] == ["m-*"] and detail["groups"] == ["g1"] and detail["budget"] is None
        assert detail["metadata"] == {"team": "a"}
        here = directory.lookup(key)
        assert here is not None and here.expired(time.time()) and here.allow_models == ("m-*",)

        def expired_there() -> bool:
            seen = other.lookup(key)
            return seen is not None and seen.expired(time.time())

        await _until(expired_there)
    finally:
        await other.stop()


async def test_config_and_unknown_consumers_cannot_be_rotated_or_edited(directory: ConsumerDirectory) -> None:
    with pytest.raises(ConfigConsumer):
        await directory.rotate("consumer1")
    with pytest.raises(ConsumerNotFound):
        await directory.edit("nobody", {"max_parallel": 2})
    await directory.add("alice")
    with pytest.raises(InvalidConsumer):
        await directory.edit("alice", {"groups": [""]})


async def test_no_key_is_stored_in_clear_after_a_rotation(
    directory: ConsumerDirectory, db_url: str, tmp_path: Path
) -> None:
    _, old = await directory.add("alice")
    new = await directory.rotate("alice", grace_s=60)
    reader = open_database(db_url, tmp_path)
    await reader.connect()
    try:
        text = repr(await reader.fetch("SELECT * FROM consumers"))
    finally:
        await reader.close()
    assert old not in text and new not in text and hash_key(old) in text and hash_key(new) in text
