"""The price table and the usage record it prices (pricing.py, accounting.record_of)."""

from __future__ import annotations

import asyncio

import pytest

from tollway.config.schema import Price
from tollway.exchange import Attempt, Exchange
from tollway.protocols.usage import apply_usage
from tollway.testing.harness import make_exchange
from tollway.usage.access_log import AccessLog
from tollway.usage.accountant import Accountant
from tollway.usage.pricing import BUILTIN_PRICES, PriceTable
from tollway.usage.record import UsageRecord, record_of

SPEC_FIELDS = (
    "ts request_id route consumer provider model_requested model_upstream status reason blocked_by stream "
    "input_tokens output_tokens cached_tokens reasoning_tokens tokens_estimated cost_usd latency_ms ttft_ms "
    "client_ip attempts"
).split()


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o1", "o3", "o3-mini", "o4-mini",
        "claude-3-5-sonnet", "claude-3-7-sonnet", "claude-sonnet-4", "claude-opus-4", "claude-3-5-haiku",
        "gemini-1.5-pro", "gemini-1.5-flash", "gemini-2.0-flash", "gemini-2.5-pro", "gemini-2.5-flash",
        "deepseek-chat", "deepseek-reasoner",
    ],
)  # fmt: skip
def test_the_common_models_are_priced(model: str) -> None:
    assert model in BUILTIN_PRICES
    assert PriceTable().cost(model, 1000, 1000, 0) is not None


@pytest.mark.parametrize(
    ("name", "entry"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # its own, older price
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("gemini-1.5-pro-002", "gemini-1.5-pro"),
        ("gemini-2.5-flash-preview-05-20", "gemini-2.5-flash"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
    ],
)
def test_dated_and_versioned_names_resolve_to_their_entry(name: str, entry: str) -> None:
    found = PriceTable().resolve(name)
    assert found is not None and found[0] == entry


def test_unknown_models_have_no_price() -> None:
    table = PriceTable()
    assert table.cost("mock-gpt", 10, 10, 0) is None
    assert table.cost(None, 10, 10, 0) is None
    assert table.resolve("gpt-4o-audio-preview-x") is None


def test_cost_charges_cached_input_at_the_cached_price() -> None:
    table = PriceTable()
    # gpt-4o: $2.50 in, $1.25 cached, $10 out per million.
    assert table.cost("gpt-4o", 1_000_000, 0, 0) == pytest.approx(2.50)
    assert table.cost("gpt-4o", 1_000_000, 1_000_000, 400_000) == pytest.approx(0.6 * 2.5 + 0.4 * 1.25 + 10.0)
    # No cached price: cached tokens pay the input price.
    assert table.cost("gpt-4-turbo", 1000, 0, 1000) == pytest.approx(table.cost("gpt-4-turbo", 1000, 0, 0) or 0)


def test_config_pricing_overrides_and_extends_the_table() -> None:
    table = PriceTable(
        {
            "gpt-4o-mini": Price(input_per_mtok=1.0, output_per_mtok=2.0),
            "house-*": Price(input_per_mtok=3.0, output_per_mtok=4.0, cached_input_per_mtok=0.5),
        }
    )
    assert table.cost("gpt-4o-mini", 1_000_000, 1_000_000, 0) == pytest.approx(3.0)
    assert table.cost("house-large", 1_000_000, 0, 1_000_000) == pytest.approx(0.5)
    found = table.resolve("house-large")
    assert found is not None and found[0] == "house-*"
    assert table.cost("gpt-4o", 1_000_000, 0, 0) == pytest.approx(2.50)  # built-ins stay


def _served_exchange() -> Exchange:
    ex = make_exchange("POST", "/v1/chat/completions", {"host": "gw"}, body=b"{}", client_ip="10.0.0.7")
    ex.model_requested, ex.model_upstream, ex.provider = "gpt-4o", "gpt-4o", "openai"
    ex.status = 200
    ex.attempts.append(Attempt("openai", 200, 12.3456))
    apply_usage(
        ex.usage,
        {
            "prompt_tokens": 1000,
            "completion_tokens": 500,
            "prompt_tokens_details": {"cached_tokens": 200},
            "completion_tokens_details": {"reasoning_tokens": 300},
        },
    )
    return ex


def test_the_record_keeps_cached_and_reasoning_tokens_apart_and_prices_the_upstream_model() -> None:
    ex = _served_exchange()
    record = record_of(ex, PriceTable()).as_dict()
    assert list(record)[: len(SPEC_FIELDS)] == SPEC_FIELDS
    assert (record["input_tokens"], record["output_tokens"]) == (1000, 500)
    assert (record["cached_tokens"], record["reasoning_tokens"]) == (200, 300)
    assert record["tokens_estimated"] is False
    assert record["cost_usd"] == pytest.approx((800 * 2.5 + 200 * 1.25 + 500 * 10.0) / 1e6)
    assert record["attempts"] == [{"provider": "openai", "status": 200, "latency_ms": 12.346}]
    assert record["client_ip"] == "10.0.0.7" and record["ts"].endswith("Z")
    assert record["attributes"] is None


def test_anthropic_cache_reads_count_as_cached_input() -> None:
    ex = make_exchange()
    apply_usage(ex.usage, {"input_tokens": 100, "cache_read_input_tokens": 900, "output_tokens": 10})
    ex.model_upstream = "claude-3-5-sonnet-20241022"
    record = record_of(ex, PriceTable())
    assert (record.input_tokens, record.cached_tokens) == (1000, 900)
    assert record.cost_usd == pytest.approx((100 * 3.0 + 900 * 0.30 + 10 * 15.0) / 1e6)


def test_an_unpriced_model_records_null_cost() -> None:
    ex = make_exchange()
    ex.model_upstream = "my-local-llama"
    apply_usage(ex.usage, {"prompt_tokens": 5, "completion_tokens": 5})
    assert record_of(ex, PriceTable()).cost_usd is None


def test_the_accountant_feeds_log_metrics_and_sinks_and_survives_a_failing_sink() -> None:
    import io

    out = io.StringIO()
    access_log = AccessLog(out)
    seen: list[UsageRecord] = []

    def broken(_records: list[UsageRecord]) -> None:
        raise RuntimeError("sink bug")

    ex = make_exchange()
    ex.status = 200
    ex.attributes = {"team": "blue", "secret": "x"}
    ex.log_attributes = frozenset({"team"})
    Accountant([broken], access_log=access_log).finish(ex)  # must not raise
    Accountant([seen.extend], access_log=access_log, prices=PriceTable()).finish(ex)
    access_log.flush()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and '"attributes":{"team":"blue"}' in lines[0] and "secret" not in lines[0]
    assert seen[0].attributes == {"team": "blue", "secret": "x"}


async def test_a_running_accountant_hands_records_on_in_batches_and_drains_at_stop() -> None:
    batches: list[list[UsageRecord]] = []
    accountant = Accountant([batches.append], interval_s=0.05)
    accountant.start()

    def call(n: int) -> None:
        ex = make_exchange(request_id=f"r{n}")
        ex.status = 200
        accountant.finish(ex)

    for n in range(3):
        call(n)
    assert batches == []  # set aside: nothing is handed on from the call's own task
    await asyncio.sleep(0.2)
    assert [[r.request_id for r in b] for b in batches] == [["r0", "r1", "r2"]]
    call(3)
    accountant.drain()  # the admin API drains before it answers
    assert [r.request_id for r in batches[-1]] == ["r3"]
    call(4)
    await accountant.stop()
    assert [r.request_id for r in batches[-1]] == ["r4"]
    call(5)  # a call cut off by the shutdown finishes after the stop: handed on at once
    assert [r.request_id for r in batches[-1]] == ["r5"]
