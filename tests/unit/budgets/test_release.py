"""Budgets.release_now (a memory store's release, no coroutine) never raises, as
``release`` does not: the gateway makes the call's usage record right after it, and a
failing release must not cost the record."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import pytest

from tollway.budgets.enforcer import HOLD, Budgets, Plan, Subject
from tollway.consumers.consumer import Consumer
from tollway.exchange import Exchange, Request
from tollway.headers import Headers
from tollway.state import Allowance
from tollway.state.memory import MemoryStateStore
from tollway.usage.pricing import PriceTable


class _FailingStore(MemoryStateStore):
    def spend_release_now(self, subjects: Sequence[Allowance], amount: int, spent: int) -> list[int | None]:
        raise RuntimeError("a bug in the store")


async def _nothing() -> None:
    return None


async def test_a_failing_release_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    budgets = Budgets(_FailingStore(), None, None, None, _nothing, hold_s=60)  # type: ignore[arg-type]
    subject = Subject("consumer", "alice", None, 2)
    ex = Exchange("req-1", Request("POST", "/v1/chat/completions", "", Headers(), "127.0.0.1", "gw"))
    plan = Plan(Consumer("alice", max_parallel=2), (subject,), None, (None,), (subject.allowance(None),), math.inf)
    ex.put(HOLD, (plan, 0, PriceTable(), ""))
    with caplog.at_level(logging.ERROR, logger="tollway"):
        budgets.release_now(ex)
    assert "releasing request req-1 failed" in caplog.text
