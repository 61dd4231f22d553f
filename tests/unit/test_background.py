"""Background work (background.py): a task is kept, stopped by cancelling or joined once
told to end; ``every`` ticks until stopped, awaiting what a tick returns."""

from __future__ import annotations

import asyncio

from tollway.background import BackgroundTask, every


async def test_stop_cancels_the_task_and_waits_for_it() -> None:
    ended: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.append("cleaned up")

    task = BackgroundTask("forever", forever)
    task.start()
    await asyncio.sleep(0)
    assert task.running
    await task.stop()
    assert ended == ["cleaned up"] and not task.running


async def test_a_task_slow_to_take_its_cancel_holds_the_stop_no_longer_than_its_bound() -> None:
    """asyncpg, cancelled in a query, waits for the server to confirm the cancel: a
    database that answers nothing held a graceful stop for the query's 30 s timeout."""
    confirmed = asyncio.Event()

    async def query() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await confirmed.wait()  # a server that never confirms
            raise

    task = BackgroundTask("refresh", query)
    task.start()
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await task.stop(bound_s=0.1)
    assert loop.time() - began < 1 and not task.running
    confirmed.set()  # (the database's close ends it)


async def test_join_lets_the_last_round_finish() -> None:
    told = asyncio.Event()
    rounds: list[int] = []

    async def work() -> None:
        await told.wait()
        await asyncio.sleep(0.02)  # the last round, which must not be cut short
        rounds.append(1)

    task = BackgroundTask("work", work)
    task.start()
    told.set()
    await task.join()
    assert rounds == [1]


async def test_stop_and_join_of_a_task_never_started_do_nothing() -> None:
    async def nothing() -> None:
        return None

    task = BackgroundTask("idle", nothing)
    await task.stop()
    await task.join()
    assert not task.running


async def test_every_ticks_until_stopped_and_awaits_coroutine_ticks() -> None:
    plain: list[int] = []
    awaited: list[int] = []

    async def slow_tick() -> None:
        await asyncio.sleep(0)
        awaited.append(1)

    ticking = [
        BackgroundTask("plain", every(0.01, lambda: plain.append(1))),
        BackgroundTask("awaited", every(0.01, slow_tick)),
    ]
    for t in ticking:
        t.start()
    await asyncio.sleep(0.1)
    for t in ticking:
        await t.stop()
    counted = (len(plain), len(awaited))
    assert min(counted) >= 3
    await asyncio.sleep(0.05)
    assert (len(plain), len(awaited)) == counted, "a stopped task ticks no more"
