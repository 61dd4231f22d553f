"""The state store contract (tollway.state), held by both stores alike.

Every test runs against the in-memory store and against Redis on 127.0.0.1:6379 (its
own key prefix per test). Clock-dependent behaviour of the memory store is in
test_memory.py; outages of Redis in test_redis.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.support.redis_support import redis_prefix, redis_url  # noqa: F401  (fixtures)
from tollway.state import UNTRACKED, Applied, QuotaState, StateStore, open_state_store
from tollway.state.memory import MemoryStateStore
from tollway.state.redis import RedisStateStore


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    if request.param == "memory":
        yield MemoryStateStore()
        return
    url: str = request.getfixturevalue("redis_url")
    s = RedisStateStore.from_url(url)
    yield s
    await s.aclose()


def test_open_state_store_picks_the_store_the_url_names() -> None:
    assert isinstance(open_state_store("memory"), MemoryStateStore)
    redis_store = open_state_store("redis://127.0.0.1:6379/3?key_prefix=abc:")
    assert isinstance(redis_store, RedisStateStore)
    assert redis_store.key_prefix == "abc:"


async def test_take_admits_up_to_the_limit_then_refuses_without_counting(store: StateStore) -> None:
    taken = [await store.take("k", 3600, 3, 1) for _ in range(5)]
    assert [t.admitted for t in taken] == [True, True, True, False, False]
    assert [t.used for t in taken] == [1, 2, 3, 3, 3]


async def test_an_amount_is_admitted_only_whole(store: StateStore) -> None:
    assert (await store.take("k", 3600, 100, 60)).admitted
    refused = await store.take("k", 3600, 100, 41)
    assert not refused.admitted and refused.used == 60
    assert (await store.take("k", 3600, 100, 40)).used == 100


async def test_keys_and_window_lengths_count_apart(store: StateStore) -> None:
    assert (await store.take("a", 3600, 1, 1)).admitted
    assert (await store.take("b", 3600, 1, 1)).admitted
    assert not (await store.take("a", 3600, 1, 1)).admitted


async def test_windows_are_aligned_to_the_epoch(store: StateStore) -> None:
    before = int(time.time() * 1000)
    t = await store.take("k", 60, 10, 1)
    after = int(time.time() * 1000)
    assert before // 60_000 <= t.window <= after // 60_000
    assert 0 < t.reset_ms <= 60_000
    # The window ends at the next multiple of 60 s (Redis's clock may differ a little).
    assert abs((t.window + 1) * 60_000 - t.reset_ms - before) < 2_000


async def test_adjust_settles_the_window_it_names(store: StateStore) -> None:
    t = await store.take("k", 3600, 100, 80)
    await store.adjust("k", t.window, -70)
    assert (await store.take("k", 3600, 100, 90)).used == 100
    await store.adjust("k", t.window - 1, -50)  # a window that has passed: nothing to change
    assert not (await store.take("k", 3600, 100, 1)).admitted


async def test_concurrent_takes_admit_exactly_the_limit(store: StateStore) -> None:
    results = await asyncio.gather(*(store.take("burst", 3600, 50, 1) for _ in range(200)))
    assert sum(r.admitted for r in results) == 50


async def test_no_quota_is_refused_and_reported_as_none(store: StateStore) -> None:
    assert await store.quota_get("q") is None
    took = await store.quota_take("q", 10)
    assert (took.admitted, took.remaining, took.reserved) == (False, None, 0)


async def test_quota_take_reserves_at_most_what_remains(store: StateStore) -> None:
    await store.quota_set("q", 25)
    first = await store.quota_take("q", 10)
    assert (first.admitted, first.remaining, first.reserved) == (True, 15, 10)
    last = await store.quota_take("q", 100)
    assert (last.admitted, last.remaining, last.reserved) == (True, 0, 15)
    refused = await store.quota_take("q", 1)
    assert (refused.admitted, refused.remaining) == (False, 0)


async def test_zero_or_negative_quota_is_refused(store: StateStore) -> None:
    await store.quota_set("zero", 0)
    await store.quota_set("neg", -5)
    assert not (await store.quota_take("zero", 1)).admitted
    neg = await store.quota_take("neg", 1)
    assert (neg.admitted, neg.remaining) == (False, -5)


async def test_settling_gives_back_what_was_not_spent(store: StateStore) -> None:
    await store.quota_set("q", 100)
    took = await store.quota_take("q", 40)
    await store.quota_settle("q", took.generation, took.reserved, 12)
    assert await store.quota_get("q") == 88
    took = await store.quota_take("q", 10)
    await store.quota_settle("q", took.generation, took.reserved, 25)  # spent more than reserved
    assert await store.quota_get("q") == 63


async def test_settling_after_a_refresh_charges_the_new_quota_only_what_was_spent(store: StateStore) -> None:
    await store.quota_set("q", 100)
    took = await store.quota_take("q", 40)
    await store.quota_set("q", 500)
    await store.quota_settle("q", took.generation, took.reserved, 12)
    assert await store.quota_get("q") == 488


async def test_quota_add_moves_the_balance_and_creates_it(store: StateStore) -> None:
    assert await store.quota_add("new", 30) == 30
    assert await store.quota_add("new", -50) == -20
    assert await store.quota_get("new") == -20


async def test_concurrent_quota_takes_never_reserve_more_than_the_quota(store: StateStore) -> None:
    await store.quota_set("q", 95)
    results = await asyncio.gather(*(store.quota_take("q", 10) for _ in range(30)))
    assert sum(r.reserved for r in results) == 95
    assert sum(r.admitted for r in results) == 10
    assert await store.quota_get("q") == 0


# --- ledger versions: what the quota ledger (tollway.quotas) relies on ---------------------


async def test_a_quota_set_without_a_ledger_is_untracked(store: StateStore) -> None:
    assert await store.quota_read("q") is None
    await store.quota_set("q", 40)
    assert await store.quota_read("q") == QuotaState(40, UNTRACKED)
    took = await store.quota_take("q", 10)
    assert await store.quota_settle("q", took.generation, took.reserved, 4) == UNTRACKED
    assert await store.quota_settle("missing", 0, 0, 4) is None
    assert await store.quota_get("missing") is None  # settling a missing quota creates none


async def test_operations_apply_in_the_ledgers_order_only(store: StateStore) -> None:
    assert await store.quota_apply("q", True, 100, 1) is Applied.MISSING
    assert await store.quota_restore("q", 0, 0, 7, replace=False)
    assert await store.quota_apply("q", False, 30, 2) is Applied.BEHIND  # operation 1 not here yet
    assert await store.quota_get("q") == 0
    assert await store.quota_apply("q", True, 100, 1) is Applied.APPLIED
    assert await store.quota_apply("q", False, 30, 2) is Applied.APPLIED
    assert await store.quota_apply("q", False, 30, 2) is Applied.ALREADY  # sent twice: counted once
    assert await store.quota_apply("q", True, 5, 1) is Applied.ALREADY
    assert await store.quota_read("q") == QuotaState(130, 2)
    took = await store.quota_take("q", 10)
    assert await store.quota_settle("q", took.generation, took.reserved, 10) == 2


async def test_an_untracked_quota_is_adopted_as_version_0(store: StateStore) -> None:
    await store.quota_add("q", 50)
    assert await store.quota_apply("q", False, 1, 1) is Applied.BEHIND
    assert await store.quota_apply("q", False, 0, 0) is Applied.APPLIED
    assert await store.quota_read("q") == QuotaState(50, 0)


async def test_a_refresh_through_the_ledger_starts_a_new_generation(store: StateStore) -> None:
    await store.quota_restore("q", 100, 3, 11, replace=False)
    took = await store.quota_take("q", 40)
    assert await store.quota_apply("q", True, 500, 4) is Applied.APPLIED
    assert await store.quota_settle("q", took.generation, took.reserved, 12) == 4
    assert await store.quota_get("q") == 488


async def test_a_restore_writes_only_a_missing_quota_or_with_replace_an_older_one(store: StateStore) -> None:
    assert await store.quota_restore("q", 100, 3, 11, replace=False)
    assert not await store.quota_restore("q", 999, 3, 12, replace=False)  # a second rebuild: idempotent
    assert not await store.quota_restore("q", 999, 5, 12, replace=False)
    assert not await store.quota_restore("q", 999, 3, 12, replace=True)  # not older
    assert await store.quota_read("q") == QuotaState(100, 3)
    assert await store.quota_restore("q", 80, 5, 12, replace=True)
    assert await store.quota_read("q") == QuotaState(80, 5)


async def test_a_reservation_made_before_a_restore_is_charged_what_it_spent(store: StateStore) -> None:
    await store.quota_restore("q", 100, 1, 11, replace=False)
    took = await store.quota_take("q", 40)
    assert await store.quota_restore("q", 70, 2, 12, replace=True)  # the balance was rebuilt meanwhile
    await store.quota_settle("q", took.generation, took.reserved, 25)
    assert await store.quota_get("q") == 45


async def test_concurrent_restores_write_once(store: StateStore) -> None:
    wrote = await asyncio.gather(*(store.quota_restore("q", 100 + i, 1, i, replace=False) for i in range(10)))
    assert sum(wrote) == 1
    assert await store.quota_read("q") == QuotaState(100 + wrote.index(True), 1)
