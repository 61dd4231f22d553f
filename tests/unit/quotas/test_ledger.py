"""tollway.quotas.ledger: the database keeps the truth of every quota, the state store is
rebuilt from it. Each test runs on SQLite and PostgreSQL, with the memory store and with
Redis (its own key prefix)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.support.quota_support import SwitchedDatabase, forget_quotas
from tollway.quotas import LedgerUnavailable
from tollway.quotas.balances import Balance
from tollway.quotas.ledger import QuotaLedger
from tollway.state import UNTRACKED, QuotaState, StateStore
from tollway.state.memory import MemoryStateStore
from tollway.state.redis import RedisStateStore
from tollway.storage import Database

KEY = "chat_quota:alice"


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    if request.param == "memory":
        yield MemoryStateStore()
        return
    s = RedisStateStore.from_url(request.getfixturevalue("redis_url"))
    yield s
    await s.aclose()


@pytest.fixture
def database(db: Database) -> SwitchedDatabase:
    return SwitchedDatabase(db)


@pytest.fixture
async def ledger(database: SwitchedDatabase, store: StateStore) -> AsyncIterator[QuotaLedger]:
    # Spends are written when a test says so (``write``), never by the clock.
    ledger = QuotaLedger(database, store, interval_s=3600, timeout_s=1.0)
    await ledger.start()
    yield ledger
    await ledger.stop()


async def spend(ledger: QuotaLedger, tokens: int, reserve: int = 50, key: str = KEY) -> None:
    """One call: reserve, then settle to what it spent."""
    took = await ledger.state.quota_take(key, reserve)
    assert took.admitted
    await ledger.settle(key, took.generation, took.reserved, tokens)


async def admitted(ledger: QuotaLedger, key: str = KEY, amount: int = 1) -> bool:
    """A call's admission as ai-quota decides it: rebuilt first where the store has nothing."""
    took = await ledger.state.quota_take(key, amount)
    if took.remaining is None:
        await ledger.restore(key)
        took = await ledger.state.quota_take(key, amount)
    return took.admitted


async def in_database(ledger: QuotaLedger, key: str = KEY) -> Balance | None:
    return await ledger.table.read(key)


async def test_management_is_written_to_the_database_and_applied_to_the_store(ledger: QuotaLedger) -> None:
    await ledger.refresh(KEY, 1000)
    await ledger.add(KEY, -200)
    assert await ledger.state.quota_read(KEY) == QuotaState(800, 2)
    assert await in_database(ledger) == Balance(800, 2, 1)
    assert await ledger.read(KEY) == 800


async def test_spends_reach_the_database_in_one_write_not_one_per_call(
    ledger: QuotaLedger, database: SwitchedDatabase
) -> None:
    await ledger.refresh(KEY, 1000)
    before = sum(database.calls.values())
    for _ in range(20):
        await spend(ledger, 7)
    assert sum(database.calls.values()) == before  # nothing on the calls' path
    assert await ledger.write()
    assert database.calls["run_transaction"] == 1
    assert await in_database(ledger) == Balance(860, 1, 1)
    assert await ledger.read(KEY) == 860


async def test_a_lost_balance_is_rebuilt_from_the_database_and_the_spends_not_written_yet(
    ledger: QuotaLedger,
) -> None:
    await ledger.refresh(KEY, 1000)
    await ledger.add(KEY, 100)
    await spend(ledger, 100)
    await ledger.write()
    await spend(ledger, 30)  # queued, not in the database yet
    await forget_quotas(ledger.state)
    assert await ledger.state.quota_read(KEY) is None
    assert await admitted(ledger)
    assert await ledger.read(KEY) == 1000 + 100 - 100 - 30 - 1
    assert ledger.rebuilt == 1
    await ledger.write()
    assert await in_database(ledger) == Balance(970, 2, 1)


async def test_a_call_in_flight_when_the_balance_was_lost_is_charged_what_it_spent(ledger: QuotaLedger) -> None:
    await ledger.refresh(KEY, 1000)
    took = await ledger.state.quota_take(KEY, 300)
    await forget_quotas(ledger.state)
    await ledger.settle(KEY, took.generation, took.reserved, 40)  # rebuilds, then charges
    assert await ledger.read(KEY) == 960
    await ledger.write()
    assert await in_database(ledger) == Balance(960, 1, 1)


async def test_spends_charged_before_a_refresh_do_not_count_against_it(ledger: QuotaLedger) -> None:
    await ledger.refresh(KEY, 1000)
    await spend(ledger, 100)
    reserved_before = await ledger.state.quota_take(KEY, 50)
    await ledger.refresh(KEY, 500)  # the spend above is still queued
    await ledger.settle(KEY, reserved_before.generation, reserved_before.reserved, 20)
    await ledger.write()
    assert await ledger.read(KEY) == 480
    assert await in_database(ledger) == Balance(480, 2, 2)
    await forget_quotas(ledger.state)
    assert await ledger.read(KEY) == 480


async def test_concurrent_calls_after_a_loss_rebuild_once(ledger: QuotaLedger, database: SwitchedDatabase) -> None:
    await ledger.refresh(KEY, 1000)
    await spend(ledger, 100)
    await ledger.write()
    await forget_quotas(ledger.state)
    reads = database.calls["fetch"]
    results = await asyncio.gather(*(admitted(ledger, amount=10) for _ in range(20)))
    assert all(results)
    assert database.calls["fetch"] == reads + 1
    assert ledger.rebuilt == 1
    assert await ledger.read(KEY) == 900 - 200


async def test_replicas_racing_to_rebuild_a_shared_balance_write_it_once(db: Database, redis_url: str) -> None:
    stores = [RedisStateStore.from_url(redis_url) for _ in range(3)]
    ledgers = [QuotaLedger(db, s, interval_s=3600) for s in stores]
    try:
        for ledger in ledgers:
            await ledger.start()
        await ledgers[0].refresh(KEY, 1000)
        await spend(ledgers[0], 100)
        await ledgers[0].write()
        await forget_quotas(stores[0])
        results = await asyncio.gather(*(admitted(ledger, amount=10) for ledger in ledgers for _ in range(5)))
        assert all(results)
        assert sum(ledger.rebuilt for ledger in ledgers) == 1
        assert await ledgers[1].read(KEY) == 900 - 150
    finally:
        for ledger, s in zip(ledgers, stores, strict=True):
            await ledger.stop()
            await s.aclose()


async def test_a_consumer_that_never_had_a_quota_still_has_none(
    ledger: QuotaLedger, database: SwitchedDatabase
) -> None:
    assert not await admitted(ledger)
    reads = database.calls["fetch"]
    assert not await admitted(ledger)
    assert database.calls["fetch"] == reads  # the store now knows: the database is not asked again
    assert await ledger.read(KEY) == 0
    await ledger.add(KEY, 70)  # a delta starts from 0, as without a database
    assert await ledger.read(KEY) == 70
    assert await in_database(ledger) == Balance(70, 1, 0)


async def test_management_while_the_database_is_down_changes_nothing(
    ledger: QuotaLedger, database: SwitchedDatabase
) -> None:
    await ledger.refresh(KEY, 1000)
    database.down = True
    with pytest.raises(LedgerUnavailable):
        await ledger.refresh(KEY, 5)
    with pytest.raises(LedgerUnavailable):
        await ledger.add(KEY, 5)
    database.down = False
    assert await ledger.read(KEY) == 1000
    assert await in_database(ledger) == Balance(1000, 1, 1)


async def test_a_rebuild_needs_the_database(ledger: QuotaLedger, database: SwitchedDatabase) -> None:
    await ledger.refresh(KEY, 1000)
    await forget_quotas(ledger.state)
    database.down = True
    with pytest.raises(LedgerUnavailable):
        await admitted(ledger)
    database.down = False
    assert await admitted(ledger)


async def test_a_rebuild_the_database_does_not_answer_costs_a_deadline_not_a_hang(
    database: SwitchedDatabase,
) -> None:
    ledger = QuotaLedger(database, MemoryStateStore(), interval_s=3600, timeout_s=0.2)
    await ledger.start()
    try:
        await ledger.refresh(KEY, 1000)
        await forget_quotas(ledger.state)
        database.hold = asyncio.Event()
        started = time.monotonic()
        with pytest.raises(LedgerUnavailable, match=r"did not answer within 0\.2 s"):
            await admitted(ledger)
        assert time.monotonic() - started < 5  # a deadline, far from a hang
        database.hold.set()
        database.hold = None
        assert await admitted(ledger)
    finally:
        await ledger.stop()


async def test_a_management_write_is_never_cut_short_by_the_ledger(database: SwitchedDatabase) -> None:
    # Cut short, a write may still land (SQLite's thread goes on with it): its 503 would lie.
    ledger = QuotaLedger(database, MemoryStateStore(), interval_s=3600, timeout_s=0.05)
    await ledger.start()
    try:
        await ledger.refresh(KEY, 1000)
        database.hold = asyncio.Event()
        adding = asyncio.ensure_future(ledger.add(KEY, 5))
        await asyncio.sleep(0.2)
        assert not adding.done()
        database.hold.set()
        await adding
        assert await ledger.read(KEY) == 1005
        assert await in_database(ledger) == Balance(1005, 2, 1)
    finally:
        await ledger.stop()


async def test_a_store_that_missed_an_operation_is_rebuilt_at_the_next_one(ledger: QuotaLedger) -> None:
    await ledger.refresh(KEY, 1000)
    await ledger.table.add(KEY, 50)  # the database took it; the store's write failed
    await ledger.add(KEY, 10)
    assert await ledger.state.quota_read(KEY) == QuotaState(1060, 3)


async def test_a_balance_set_before_the_ledger_is_adopted(ledger: QuotaLedger) -> None:
    await ledger.state.quota_set(KEY, 300)  # as a gateway without the ledger left it
    assert await ledger.state.quota_read(KEY) == QuotaState(300, UNTRACKED)
    await ledger.add(KEY, 20)
    assert await ledger.state.quota_read(KEY) == QuotaState(320, 1)
    assert await in_database(ledger) == Balance(320, 1, 0)
    # … and in the background once a call spends from one.
    await ledger.state.quota_set("chat_quota:bob", 500)
    await spend(ledger, 40, key="chat_quota:bob")
    await ledger.write()
    assert await in_database(ledger, "chat_quota:bob") == Balance(460, 0, 0)
    await spend(ledger, 60, key="chat_quota:bob")
    await ledger.write()
    await forget_quotas(ledger.state)
    assert await ledger.read("chat_quota:bob") == 400


async def test_the_stop_writes_what_is_queued(database: SwitchedDatabase) -> None:
    ledger = QuotaLedger(database, MemoryStateStore(), interval_s=3600)
    await ledger.start()
    await ledger.refresh(KEY, 1000)
    await spend(ledger, 25)
    await ledger.stop()
    assert await in_database(ledger) == Balance(975, 1, 1)


async def test_spends_are_written_every_interval(database: SwitchedDatabase) -> None:
    ledger = QuotaLedger(database, MemoryStateStore(), interval_s=0.05)
    await ledger.start()
    try:
        await ledger.refresh(KEY, 1000)
        await spend(ledger, 25)
        for _ in range(100):
            if await in_database(ledger) == Balance(975, 1, 1):
                break
            await asyncio.sleep(0.02)
        assert await in_database(ledger) == Balance(975, 1, 1)
    finally:
        await ledger.stop()


async def test_a_restarted_process_finds_its_quotas_in_the_database(database: SwitchedDatabase) -> None:
    first = QuotaLedger(database, MemoryStateStore(), interval_s=3600)
    await first.start()
    await first.refresh(KEY, 1000)
    await spend(first, 25)
    await first.stop()
    second = QuotaLedger(database, MemoryStateStore(), interval_s=3600)
    await second.start()
    try:
        assert await admitted(second)
        assert await second.read(KEY) == 974
    finally:
        await second.stop()
