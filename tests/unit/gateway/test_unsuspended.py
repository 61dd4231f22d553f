"""run_shielded: a call's done hooks finish even when the client's task is cancelled,
without a task of their own when they never wait."""

from __future__ import annotations

import asyncio

import pytest

from tollway.gateway.unsuspended import run_shielded


async def test_a_coroutine_that_never_waits_ends_within_the_callers_own_task() -> None:
    ran_in: list[asyncio.Task[object] | None] = []

    async def counted() -> int:  # as a state store in this process's memory answers
        return 1

    async def settle() -> None:
        await counted()
        ran_in.append(asyncio.current_task())

    await run_shielded(settle())
    assert ran_in == [asyncio.current_task()]


async def test_a_coroutine_that_waits_gets_what_it_waited_for_and_ends_before_the_call_returns() -> None:
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[int] = loop.create_future()
    seen: list[object] = []

    async def settle() -> None:
        seen.append(await reply)
        await asyncio.sleep(0)  # a bare yield, too
        seen.append("after")

    loop.call_later(0.01, reply.set_result, 7)
    await run_shielded(settle())
    assert seen == [7, "after"]


async def test_a_failure_it_waited_for_is_raised_inside_it() -> None:
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[int] = loop.create_future()
    seen: list[str] = []

    async def settle() -> None:
        try:
            await reply
        except ConnectionError as exc:
            seen.append(str(exc))

    loop.call_later(0.01, reply.set_exception, ConnectionError("redis went away"))
    await run_shielded(settle())
    assert seen == ["redis went away"]


async def test_a_cancelled_caller_is_told_and_the_coroutine_still_ends() -> None:
    loop = asyncio.get_running_loop()
    reply: asyncio.Future[int] = loop.create_future()
    finished = asyncio.Event()

    async def settle() -> None:
        await reply
        finished.set()

    caller = asyncio.ensure_future(run_shielded(settle()))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert not finished.is_set()
    reply.set_result(1)
    await asyncio.wait_for(finished.wait(), 1)


async def test_an_error_in_the_first_step_is_raised_to_the_caller() -> None:
    async def settle() -> None:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        await run_shielded(settle())
