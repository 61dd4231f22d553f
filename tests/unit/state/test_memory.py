"""tollway.state.memory: windows under a fake clock, and the sweep of ended windows."""

from __future__ import annotations

from tollway.state import Admission, Allowance
from tollway.state.memory import MemoryStateStore


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_new_window_starts_empty_at_each_multiple_of_its_length() -> None:
    clock = Clock(1_000_000 * 60 + 59.5)  # half a second before a minute boundary
    store = MemoryStateStore(clock)
    assert (await store.take("k", 60, 1, 1)).admitted
    refused = await store.take("k", 60, 1, 1)
    assert not refused.admitted and refused.reset_ms == 500
    clock.now += 0.5
    fresh = await store.take("k", 60, 1, 1)
    assert fresh.admitted and fresh.used == 1
    assert fresh.window == 1_000_001 and fresh.reset_ms == 60_000


async def test_settling_a_window_that_has_ended_changes_nothing() -> None:
    clock = Clock(3600 * 10.0)
    store = MemoryStateStore(clock)
    old = await store.take("k", 3600, 100, 50)
    clock.now += 3600
    await store.take("k", 3600, 100, 10)
    await store.adjust("k", old.window, -50)
    assert store.window_used("k") == 10


async def test_ended_windows_are_swept_as_the_table_grows() -> None:
    clock = Clock(60.0 * 1000)
    store = MemoryStateStore(clock)
    for i in range(4096):
        await store.take(f"client-{i}", 1, 10, 1)
    clock.now += 2
    await store.take("late", 1, 10, 1)
    assert len(store._windows) == 1
    assert store.window_used("client-1") is None


async def test_ended_budget_periods_leave_nothing_behind() -> None:
    # A process that runs for many periods with many budgeted consumers: each period
    # makes new spend counters, holds and alert claims; those of ended periods go.
    clock = Clock(86_400.0 * 20_000)
    store = MemoryStateStore(clock)
    for day in range(3):
        if day:
            clock.now += 86_400
        for i in range(1500):
            key = f"spend:consumer:c{i}:day-{day}"
            assert await store.spend_restore(key, 0, 86_400_000)
            subjects = [Allowance(key, 10**9, f"running:consumer:c{i}", 5)]
            admitted = await store.spend_admit(subjects, 100, 60_000)
            assert admitted.outcome == Admission.ADMITTED
            assert await store.spend_release(subjects, 100, 40) == [40]
            assert await store.claim(f"alert:{key}:0.8", 86_400_000)
    # Holds and running counts back at 0 are gone; of the spend counters and claims,
    # at most the last periods' (swept as their tables double) are kept.
    assert store._counts == {}
    assert len(store._spends) <= 2 * 1500
    assert len(store._claims) <= 2 * 1500
    # The live period's counters are intact.
    assert (await store.spend_read("spend:consumer:c7:day-2")) == (40, 0)
    assert not await store.claim("alert:spend:consumer:c7:day-2:0.8", 86_400_000)


async def test_a_key_bound_keeps_its_first_value_until_it_expires() -> None:
    now = [1000.0]
    store = MemoryStateStore(clock=lambda: now[0])
    assert await store.bind("mcp-session:s1", "alice", 60_000) == "alice"
    assert await store.bind("mcp-session:s1", "bob", 60_000) == "alice"
    now[0] += 61
    assert await store.bind("mcp-session:s1", "bob", 60_000) == "bob"
    # Expired bindings are swept once the table has grown: it stays bounded.
    for i in range(5000):
        await store.bind(f"k{i}", "v", 1_000)
        now[0] += 0.01
    assert len(store._bound) < 3000
