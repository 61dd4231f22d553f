"""tollway.quotas.balances: the quota_balances table on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tollway.quotas.balances import Balance, BalanceTable
from tollway.storage import Database


@pytest.fixture
async def table(db: Database) -> BalanceTable:
    table = BalanceTable(db)
    await table.migrate()
    await table.migrate()  # idempotent: replicas starting together both run it
    return table


async def test_each_operation_moves_the_version_and_a_refresh_marks_it(table: BalanceTable) -> None:
    assert await table.read("q") is None
    assert await table.add("q", 30) == 1  # a delta on nothing starts from 0
    assert await table.read("q") == Balance(30, 1, 0)
    assert await table.refresh("q", 500) == 2
    assert await table.add("q", -20) == 3
    assert await table.read("q") == Balance(480, 3, 2)


async def test_a_spend_counts_only_if_no_refresh_came_after_it(table: BalanceTable) -> None:
    await table.refresh("q", 500)
    await table.add("q", 100)
    await table.refresh("q", 1000)  # version 3
    await table.charge({"q": {2: 70, 3: 5, 4: 1}})
    assert await table.read("q") == Balance(994, 3, 3)


async def test_adopting_writes_only_a_key_the_table_does_not_have(table: BalanceTable) -> None:
    assert await table.adopt("q", 250)
    assert await table.read("q") == Balance(250, 0, 0)
    assert not await table.adopt("q", 999)
    assert await table.add("q", 1) == 1
    assert await table.read("q") == Balance(251, 1, 0)


async def test_big_balances_stay_exact(table: BalanceTable) -> None:
    await table.refresh("q", 2**53 - 1)
    await table.add("q", -(2**53 - 1))
    await table.add("q", -(2**53 - 1))
    assert await table.read("q") == Balance(-(2**53 - 1), 3, 1)
