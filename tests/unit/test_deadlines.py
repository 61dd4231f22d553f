"""``tollway.deadlines``: one loop timer for many deadlines, each run once its slot ends,
never early, at most a slot late; cancelled ones never run."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from tollway import deadlines
from tollway.deadlines import RESOLUTION_S, Deadlines


async def _ran_at(wheel: Deadlines, delays: list[float]) -> dict[int, float]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    ran: dict[int, float] = {}
    for i, delay in enumerate(delays):
        wheel.after(delay, lambda i=i: ran.setdefault(i, loop.time() - start))  # type: ignore[misc]
    await asyncio.sleep(max(delays) + 3 * RESOLUTION_S)
    return ran


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_each_runs_once_never_early_and_at_most_a_slot_late(loop_kind: str) -> None:
    delays = [0.0, 0.01, 0.12, 0.05, 0.3, 0.12]

    async def main() -> dict[int, float]:
        return await _ran_at(deadlines.for_loop(asyncio.get_running_loop()), delays)

    ran = uvloop.run(main()) if loop_kind == "uvloop" else asyncio.run(main())
    assert sorted(ran) == list(range(len(delays)))
    for i, delay in enumerate(delays):
        assert delay <= ran[i] < delay + RESOLUTION_S + 0.03, (delay, ran[i])


async def test_a_cancelled_deadline_never_runs_and_the_others_do() -> None:
    wheel = Deadlines(asyncio.get_running_loop())
    ran: list[str] = []
    kept = wheel.after(0.05, lambda: ran.append("kept"))
    gone = wheel.after(0.05, lambda: ran.append("gone"))
    later = wheel.after(0.2, lambda: ran.append("later"))
    gone.cancel()
    later.cancel()
    await asyncio.sleep(0.35)
    assert ran == ["kept"]
    kept.cancel()  # after it ran: nothing happens


async def test_a_failing_callback_is_reported_and_does_not_stop_the_others() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    wheel = Deadlines(loop)
    ran: list[int] = []

    def fail() -> None:
        raise RuntimeError("boom")

    wheel.after(0.01, fail)
    wheel.after(0.01, lambda: ran.append(1))
    await asyncio.sleep(0.15)
    assert ran == [1]
    assert [type(c["exception"]) for c in reported] == [RuntimeError]


async def test_an_earlier_deadline_armed_later_still_runs_first() -> None:
    wheel = Deadlines(asyncio.get_running_loop())
    ran: list[str] = []
    wheel.after(0.3, lambda: ran.append("late"))
    wheel.after(0.02, lambda: ran.append("early"))
    await asyncio.sleep(0.15)
    assert ran == ["early"]
    await asyncio.sleep(0.3)
    assert ran == ["early", "late"]


async def test_a_deadline_armed_by_a_deadline_runs_too() -> None:
    wheel = Deadlines(asyncio.get_running_loop())
    ran: list[str] = []
    wheel.after(0.02, lambda: wheel.after(0.02, lambda: ran.append("second")))
    await asyncio.sleep(0.25)
    assert ran == ["second"]


def test_each_loop_has_its_own() -> None:
    async def mine() -> Deadlines:
        return deadlines.for_loop(asyncio.get_running_loop())

    first, second = asyncio.run(mine()), asyncio.run(mine())
    assert first is not second
