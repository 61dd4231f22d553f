"""tollway.quotas.spends: spends summed per quota and version, written a batch at a time,
kept through an outage, a refused one never holding up the others. SQLite and PostgreSQL."""

from __future__ import annotations

import logging

import pytest

from tests.support.quota_support import SwitchedDatabase
from tollway.quotas.balances import Balance, BalanceTable
from tollway.quotas.spends import SpendQueue
from tollway.storage import Database


@pytest.fixture
async def table(db: Database) -> BalanceTable:
    table = BalanceTable(SwitchedDatabase(db))
    await table.migrate()
    for key in ("alice", "bob"):
        assert await table.refresh(key, 1000) == 1
    return table


def switch(table: BalanceTable) -> SwitchedDatabase:
    assert isinstance(table.db, SwitchedDatabase)
    return table.db


async def test_spends_are_summed_as_they_come_and_written_in_one_transaction(table: BalanceTable) -> None:
    queue = SpendQueue(table)
    for _ in range(50):
        queue.add("alice", 1, 3)
        queue.add("bob", 1, 1)
    assert queue.queued == 200
    assert await queue.write()
    assert switch(table).calls["run_transaction"] == 1
    assert await table.read("alice") == Balance(850, 1, 1)
    assert await table.read("bob") == Balance(950, 1, 1)
    assert queue.queued == 0
    assert await queue.write()  # nothing queued: nothing to write
    assert switch(table).calls["run_transaction"] == 1


async def test_what_a_rebuild_counts_as_still_owed(table: BalanceTable) -> None:
    queue = SpendQueue(table)
    queue.add("alice", 1, 10)  # charged before a refresh at version 2: overwritten by it
    queue.add("alice", 2, 20)
    queue.add("alice", 3, 40)
    assert queue.queued_for("alice", 2) == 60
    assert queue.queued_for("alice", 0) == 70
    assert queue.queued_for("bob", 0) == 0


async def test_spends_wait_out_a_database_outage(table: BalanceTable, caplog: pytest.LogCaptureFixture) -> None:
    queue = SpendQueue(table)
    with caplog.at_level(logging.WARNING, logger="tollway.quotas"):
        switch(table).down = True
        for _ in range(3):
            queue.add("alice", 1, 10)
            assert not await queue.write()
        switch(table).down = False
        assert await queue.write()
    lines = [r.getMessage() for r in caplog.records]
    assert len([m for m in lines if "spends wait in memory" in m]) == 1  # once per 10 s
    assert len([m for m in lines if "takes spends again" in m]) == 1
    assert all(r.exc_info is None for r in caplog.records)
    assert await table.read("alice") == Balance(970, 1, 1)


async def test_a_spend_the_database_refuses_is_dropped_and_the_others_written(
    table: BalanceTable, caplog: pytest.LogCaptureFixture
) -> None:
    queue = SpendQueue(table)
    queue.add("alice", 1, 10)
    queue.add("bob", 1, 20)
    switch(table).refuse.add("bob")
    with caplog.at_level(logging.ERROR, logger="tollway.quotas"):
        assert await queue.write()
    assert [r.getMessage() for r in caplog.records if "refused a spend of 20 on 'bob'" in r.getMessage()] != []
    switch(table).refuse.clear()
    assert await table.read("alice") == Balance(990, 1, 1)
    assert await table.read("bob") == Balance(1000, 1, 1)
    assert (queue.queued, queue.dropped) == (0, 20)
