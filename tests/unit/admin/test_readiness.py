"""``/readyz``'s checks (admin/readiness.py): a check past its bound fails at once even
when its cancellation is slow to end (asyncpg asking a silent server to confirm it), and
a dependency never has two checks running. Against PostgreSQL behind a silent proxy:
tests/system/test_readiness.py."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from tollway.admin import readiness
from tollway.admin.app import AdminRequest


async def test_a_check_past_its_bound_fails_at_once_and_a_dependency_back_is_seen_at_the_next_probe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(readiness, "CHECK_TIMEOUT_S", 0.05)
    monkeypatch.setattr(readiness, "MAX_ENDING", 3)
    started: list[asyncio.Task[object] | None] = []
    away = True

    async def hangs_while_away() -> None:
        started.append(asyncio.current_task())
        if not away:
            return
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.Event().wait()  # a cancellation that never finishes on its own

    async def fine() -> None:
        return None

    checks = readiness.Readiness({"database": hangs_while_away, "config": fine})
    request = AdminRequest("GET", "/readyz", "", {}, b"")
    for _ in range(6):  # each within the bound, though no check ever ends
        status, _, body = await asyncio.wait_for(checks.answer(request), 5)
        assert status == 503
        assert orjson.loads(body)["checks"] == {"database": "no answer within 2s", "config": "ok"}
    # A fresh check for each probe past a stuck one, up to MAX_ENDING left ending: not one
    # per probe for ever (a probe every few seconds against a silent database).
    assert len(started) == 4
    running = [t for t in started if t is not None and not t.done()]
    assert len(running) == 4
    # The database is back: the next probe that may start a check sees it (a stuck check
    # kept as the one to wait on held readiness at 503 for the driver's ~30 s).
    away = False
    for task in running[:2]:
        task.cancel()  # two of the stuck ones end at last, making room
    await asyncio.sleep(0)
    status, _, body = await asyncio.wait_for(checks.answer(request), 5)
    assert (status, orjson.loads(body)["checks"]["database"]) == (200, "ok")
    await checks.stop(bound_s=0.05)
