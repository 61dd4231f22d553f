"""What a budgeted call is held and settled at: the price of the model its route sends
upstream, at the current price table, and the same price in its usage record."""

from __future__ import annotations

import math

from tollway.budgets.enforcer import HOLD, Budgets, Plan, Subject, _over_budget
from tollway.budgets.periods import span_of
from tollway.config.schema import Price
from tollway.consumers.consumer import Budget, Consumer
from tollway.consumers.groups import GroupDirectory
from tollway.exchange import Exchange, Request
from tollway.headers import Headers
from tollway.plugin import UpstreamCall
from tollway.routing.routes import Route
from tollway.state.memory import MemoryStateStore
from tollway.usage.pricing import PriceTable
from tollway.usage.record import record_of


async def _nothing() -> None:
    return None


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
    ex.put(HOLD, (plan, 0, old, ""))
    budgets.release_now(ex)
    counted = (1000 * 1.0 + 500 * 2.0) / 1e6
    assert ex.priced == (counted, None)
    reloaded = PriceTable({"m": Price(input_per_mtok=5.0, output_per_mtok=9.0)})
    assert record_of(ex, reloaded).cost_usd == counted
    # A call no budget priced is priced by the record, at the table it is given.
    ex.priced = None
    assert record_of(ex, reloaded).cost_usd == (1000 * 5.0 + 500 * 9.0) / 1e6


def _route(name: str) -> Route:
    return Route(name, (), None, None, "/v1/", None, ("p",), ())


def test_a_hold_is_priced_as_each_route_maps_the_model_and_at_the_current_prices() -> None:
    # A hold is priced as the model its route sends upstream: the same model name sent
    # upstream as another model on another route (or after a reload, whose routes are
    # new objects) is priced as that one, at the price table of the moment.
    budgets = Budgets(MemoryStateStore(), None, GroupDirectory(), None, _nothing, hold_s=60)  # type: ignore[arg-type]
    budgets.configure(
        PriceTable(
            {
                "cheap": Price(input_per_mtok=1.0, output_per_mtok=1.0),
                "dear": Price(input_per_mtok=100.0, output_per_mtok=100.0),
            }
        )
    )
    consumer = Consumer("alice", budget=Budget(1000.0, "total"))
    plan = budgets._plan(consumer, 0.0)
    mapping = {"a": "cheap", "b": "dear"}

    def upstream_calls(route: Route, model: str) -> tuple[UpstreamCall, ...]:
        return (UpstreamCall(mapping[route.name]),)

    def hold_on(route: Route) -> int:
        body = b'{"model": "m", "max_tokens": 100}'
        ex = Exchange("r", Request("POST", "/v1/chat/completions", "", Headers(), "127.0.0.1", "gw", body=body))
        ex.route, ex.api, ex.model_requested = route, "chat", "m"
        return budgets._amount(ex, plan, upstream_calls)

    a, b = _route("a"), _route("b")
    cheap = hold_on(a)
    assert hold_on(b) == 100 * cheap  # not route a's price
    assert hold_on(a) == cheap
    assert hold_on(_route("a")) == cheap  # a reload's new route: asked again, same answer
    mapping["a"] = "dear"
    assert hold_on(_route("a")) == 100 * cheap  # a reload that maps it anew
    mapping["a"] = "cheap"
    assert hold_on(a) == cheap
    budgets.configure(PriceTable({"cheap": Price(input_per_mtok=2.0, output_per_mtok=2.0)}))
    assert hold_on(a) == 2 * cheap  # new prices, not the old ones


def test_counting_tokens_holds_nothing_and_needs_no_price() -> None:
    # No provider bills /v1/messages/count_tokens: holding 4,096 output tokens for it
    # refused token counting (Claude Code asks for it often) to a consumer near its budget.
    budgets = Budgets(MemoryStateStore(), None, GroupDirectory(), None, _nothing, hold_s=60)  # type: ignore[arg-type]
    budgets.configure(PriceTable({"priced": Price(input_per_mtok=100.0, output_per_mtok=100.0)}))
    plan = budgets._plan(Consumer("alice", budget=Budget(0.01, "total")), 0.0)
    body = b'{"model": "unpriced", "messages": [{"role": "user", "content": "hi"}]}'
    ex = Exchange("r", Request("POST", "/v1/messages/count_tokens", "", Headers(), "127.0.0.1", "gw", body=body))
    ex.route, ex.api, ex.model_requested = _route("a"), "count_tokens", "unpriced"
    assert budgets._amount(ex, plan, lambda route, model: (UpstreamCall(model),)) == 0
    ex.api, ex.model_requested = "messages", "priced"
    assert budgets._amount(ex, plan, lambda route, model: (UpstreamCall(model),)) > 0


def test_a_refusal_names_a_small_budget_in_dollars_as_it_names_the_spend() -> None:
    # A judge read "its budget per day of $1e-05 ($0.000006 spent, …)".
    subject = Subject("consumer", "bob", Budget(0.00001, "day"), None)
    refusal = _over_budget(subject, span_of("day", 1_800_000_000.0), 6_000, 0, 5_000)
    assert "budget per day of $0.00001 ($0.000006 spent, $0 held" in refusal.message
