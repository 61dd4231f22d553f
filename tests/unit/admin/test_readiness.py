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


async def test_a_check_past_its_bound_fails_at_once_and_is_not_run_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readiness, "CHECK_TIMEOUT_S", 0.05)
    started: list[asyncio.Task[object] | None] = []
    ending = asyncio.Event()

    async def hangs() -> None:
        started.append(asyncio.current_task())
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            ending.set()
            await asyncio.Event().wait()  # a cancellation that never finishes on its own

    async def fine() -> None:
        return None

    checks = readiness.Readiness({"database": hangs, "config": fine})
    request = AdminRequest("GET", "/readyz", "", {}, b"")
    for _ in range(3):  # each within the bound, though the first check never ends
        status, _, body = await asyncio.wait_for(checks.answer(request), 5)
        assert status == 503
        assert orjson.loads(body)["checks"] == {"database": "no answer within 2s", "config": "ok"}
    assert ending.is_set() and len(started) == 1
    await checks.stop(bound_s=0.05)
