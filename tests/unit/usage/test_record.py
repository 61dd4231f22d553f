"""The usage record of a call and its price (usage/record.py, ``record_of``)."""

from __future__ import annotations

import pytest

from tollway.exchange import Attempt, Exchange
from tollway.protocols.usage import apply_usage
from tollway.testing.harness import make_exchange
from tollway.usage.pricing import PriceTable
from tollway.usage.record import record_of

SPEC_FIELDS = (
    "ts request_id route consumer provider model_requested model_upstream status reason blocked_by stream "
    "input_tokens output_tokens cached_tokens reasoning_tokens tokens_estimated cost_usd latency_ms ttft_ms "
    "client_ip attempts"
).split()


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


def test_a_cache_hit_costs_nothing_and_says_what_its_tokens_saved() -> None:
    ex = make_exchange("POST", "/v1/chat/completions", body=b"{}")
    ex.model_upstream, ex.status, ex.cache = "gpt-4o", 200, "hit"
    ex.usage.input_tokens, ex.usage.output_tokens = 1000, 500
    record = record_of(ex, PriceTable())
    assert record.cache == "hit" and record.cost_usd == 0
    assert record.cost_saved_usd == pytest.approx((1000 * 2.5 + 500 * 10.0) / 1e6)
    assert (record.input_tokens, record.output_tokens, record.provider, record.attempts) == (1000, 500, None, [])


def test_a_miss_is_priced_as_any_call_and_saves_nothing() -> None:
    ex = _served_exchange()
    ex.cache = "miss"
    record = record_of(ex, PriceTable())
    assert record.cache == "miss" and record.cost_usd is not None and record.cost_usd > 0
    assert record.cost_saved_usd is None
