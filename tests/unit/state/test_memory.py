"""tollway.state.memory: windows under a fake clock, and the sweep of ended windows."""

from __future__ import annotations

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
