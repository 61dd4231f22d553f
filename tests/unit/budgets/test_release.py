"""Budgets.release_now (a memory store's release, no coroutine) never raises, as
``release`` does not: the gateway makes the call's usage record right after it, and a
failing release must not cost the record."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import pytest

from tollway.budgets.enforcer import HOLD, Budgets, Plan, Subject
from tollway.config.schema import Price
from tollway.consumers.consumer import Consumer
from tollway.exchange import Exchange, Request
from tollway.headers import Headers
from tollway.state import Allowance
from tollway.state.memory import MemoryStateStore
from tollway.usage.pricing import PriceTable
from tollway.usage.record import record_of


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
    ex.put(HOLD, (plan, 0, PriceTable()))
    with caplog.at_level(logging.ERROR, logger="tollway"):
        budgets.release_now(ex)
    assert "releasing request req-1 failed" in caplog.text


async def test_the_record_says_what_the_budget_counted_even_after_the_prices_changed() -> None:
    # A reload between a call's admission and its record must not make the two disagree:
    # the budget settles at the hold's price table, and the record keeps that pricing.
    budgets = Budgets(MemoryStateStore(), None, None, None, _nothing, hold_s=60)  # type: ignore[arg-type]
    old = PriceTable({"m": Price(input_per_mtok=1.0, output_per_mtok=2.0)})
    subject = Subject("consumer", "alice", None, 2)
    plan = Plan(Consumer("alice", max_parallel=2), (subject,), None, (None,), (subject.allowance(None),), math.inf)
    ex = Exchange("req-1", Request("POST", "/v1/chat/completions", "", Headers(), "127.0.0.1", "gw"))
    ex.model_upstream, ex.status = "m", 200
    ex.usage.input_tokens, ex.usage.output_tokens = 1000, 500
    ex.put(HOLD, (plan, 0, old))
    budgets.release_now(ex)
    counted = (1000 * 1.0 + 500 * 2.0) / 1e6
    assert ex.priced == (counted, None)
    reloaded = PriceTable({"m": Price(input_per_mtok=5.0, output_per_mtok=9.0)})
    assert record_of(ex, reloaded).cost_usd == counted
    # A call no budget priced is priced by the record, at the table it is given.
    ex.priced = None
    assert record_of(ex, reloaded).cost_usd == (1000 * 5.0 + 500 * 9.0) / 1e6
