"""Prometheus metrics (usage/metrics.py): names, labels, bounded model label, private registry."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from tests.support.usage_support import metric_sum, parse_metrics, usage_record
from tollway.config.load import load_config_text
from tollway.plugins.key_auth import config_consumers
from tollway.plugins.registry import PLUGIN_MODELS
from tollway.usage.metrics import PRICED_NAMES, UsageMetrics, configured_models
from tollway.usage.pricing import PriceTable
from tollway.usage.record import UsageRecord

CONFIG = """
pricing: {house-model: {input_per_mtok: 1, output_per_mtok: 2}}
providers:
  - id: up
    type: openai
    baseUrl: http://127.0.0.1:9/v1
    modelMapping: {"gpt-3.5*": gpt-4o-mini, small: tiny-upstream, "~x-(.*)": "y-$1", "*": gpt-4o}
routes:
  - {name: chat, path_prefix: /v1/, provider: up, model_providers: {routed-model: up}}
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      consumers:
        - {name: alice, credential: k1, allow_models: [team-model, "team-*"]}
"""


def _record(**fields: Any) -> UsageRecord:
    base: dict[str, Any] = {"cached_tokens": 3, "reasoning_tokens": 4, "cost_usd": 0.5}
    base.update(fields)
    return usage_record(**base)


def _metrics() -> UsageMetrics:
    loaded = load_config_text(CONFIG, plugins=PLUGIN_MODELS, base_dir=Path("."))
    m = UsageMetrics()
    m.configure(configured_models(loaded, config_consumers(loaded)), PriceTable(loaded.config.pricing))
    return m


def test_configured_model_names_leave_patterns_out() -> None:
    loaded = load_config_text(CONFIG, plugins=PLUGIN_MODELS, base_dir=Path("."))
    names = configured_models(loaded, config_consumers(loaded))
    assert names == {"gpt-4o-mini", "small", "tiny-upstream", "gpt-4o", "routed-model", "team-model"}


def test_the_spec_names_and_labels() -> None:
    m = _metrics()
    m.observe(_record(ttft_ms=50.0))
    m.observe(_record(consumer=None, status=401, reason="key-auth.no_key", model_requested=None, model_upstream=None,
                      input_tokens=0, output_tokens=0, cached_tokens=0, reasoning_tokens=0, cost_usd=None))  # fmt: skip
    samples = parse_metrics(m.render().decode())
    assert (
        metric_sum(samples, "tollway_requests_total", route="chat", consumer="alice", model="gpt-4o", code="200") == 1
    )
    assert metric_sum(samples, "tollway_requests_total", consumer="none", model="other", code="401") == 1
    for kind, value in (("input", 10), ("output", 20), ("cached", 3), ("reasoning", 4)):
        assert metric_sum(samples, "tollway_tokens_total", consumer="alice", model="gpt-4o", kind=kind) == value
    assert metric_sum(samples, "tollway_cost_usd_total", consumer="alice", model="gpt-4o") == 0.5
    assert metric_sum(samples, "tollway_request_duration_seconds_count") == 2
    assert metric_sum(samples, "tollway_request_duration_seconds_sum", model="gpt-4o") == 0.12
    assert metric_sum(samples, "tollway_first_token_seconds_count") == 1
    assert metric_sum(samples, "tollway_first_token_seconds_bucket", le="0.05") == 1
    assert metric_sum(samples, "tollway_rejections_total", plugin="key-auth", code="401") == 1


def test_the_model_label_is_bounded() -> None:
    m = _metrics()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"model_requested": "gpt-3.5-turbo", "model_upstream": "gpt-4o-mini"}, "gpt-4o-mini"),
        ({"model_requested": "small", "model_upstream": "tiny-upstream"}, "tiny-upstream"),
        ({"model_requested": "house-model", "model_upstream": "house-model"}, "house-model"),  # pricing entry
        ({"model_requested": "team-model", "model_upstream": "team-model"}, "team-model"),  # allow_models
        ({"model_requested": "routed-model", "model_upstream": "routed-model"}, "routed-model"),  # model_providers
        # A priced name is the record's name, dated or aliased: metrics and records agree.
        ({"model_requested": "gpt-4o-2024-08-06", "model_upstream": "gpt-4o-2024-08-06"}, "gpt-4o-2024-08-06"),
        ({"model_requested": "claude-3-5-haiku-latest", "model_upstream": "claude-3-5-haiku-latest"},
         "claude-3-5-haiku-latest"),
        ({"model_requested": "client-junk-2", "model_upstream": "client-junk-2"}, "other"),
        # The record (and the dashboard) name the call by the model sent upstream: a label
        # taken from the requested name instead would count it where the dashboard does not.
        ({"model_requested": "gpt-4o", "model_upstream": "y-made-up"}, "other"),
        ({"model_requested": "team-model", "model_upstream": None}, "team-model"),  # refused before routing
    ]  # fmt: skip
    for fields, _ in cases:
        m.observe(_record(**fields))
    samples = parse_metrics(m.render().decode())
    labels = {lb["model"] for n, lb, _ in samples if n == "tollway_requests_total"}
    assert labels == {label for _, label in cases}


def test_names_clients_choose_share_one_series_whatever_the_provider_answers() -> None:
    # Finding 8: a provider echoing 10k client-chosen names made a 46 MB scrape. The
    # record carries no reported name any more, so nothing a provider says reaches a label.
    m = _metrics()
    for i in range(10_000):
        m.observe(_record(model_requested=f"client-{i}", model_upstream=f"client-{i}"))
    samples = parse_metrics(m.render().decode())
    requests = [(lb["model"], v) for n, lb, v in samples if n == "tollway_requests_total"]
    assert requests == [("other", 10_000)]
    assert len(m.render()) < 20_000


def test_priced_names_beyond_the_bound_count_under_their_price_entry() -> None:
    # A provider may answer with any dated name a client asks for ("gpt-4o-<anything>"
    # is priced as gpt-4o): the first PRICED_NAMES keep their own label, the rest share
    # their entry's.
    m = _metrics()
    for i in range(PRICED_NAMES + 1000):
        name = f"gpt-4o-{date(2000, 1, 1) + timedelta(days=i):%Y-%m-%d}"
        m.observe(_record(model_requested=name, model_upstream=name))
    samples = parse_metrics(m.render().decode())
    labels = {lb["model"]: v for n, lb, v in samples if n == "tollway_requests_total"}
    assert len(labels) == PRICED_NAMES + 1
    assert labels["gpt-4o"] == 1000
    assert labels["gpt-4o-2000-01-01"] == 1


def test_a_reload_does_not_widen_the_bound_on_priced_names() -> None:
    # The series of names taken before a reload outlive it, so the names taken after
    # it count against the same bound.
    m = _metrics()
    names = [f"gpt-4o-{date(2000, 1, 1) + timedelta(days=i):%Y-%m-%d}" for i in range(PRICED_NAMES + 10)]
    for name in names[:PRICED_NAMES]:
        m.observe(_record(model_requested=name, model_upstream=name))
    loaded = load_config_text(CONFIG, plugins=PLUGIN_MODELS, base_dir=Path("."))
    m.configure(configured_models(loaded, config_consumers(loaded)), PriceTable(loaded.config.pricing))
    for name in [*names[PRICED_NAMES:], names[0]]:  # new names first
        m.observe(_record(model_requested=name, model_upstream=name))
    samples = parse_metrics(m.render().decode())
    labels = {lb["model"]: v for n, lb, v in samples if n == "tollway_requests_total"}
    assert len(labels) == PRICED_NAMES + 1
    assert labels["gpt-4o"] == 10
    assert labels[names[0]] == 2  # a name taken before the reload is still its own label


def test_refused_records_are_counted() -> None:
    m = _metrics()
    assert metric_sum(parse_metrics(m.render().decode()), "tollway_records_failed_total") == 0
    m.record_failed()
    m.record_failed()
    assert metric_sum(parse_metrics(m.render().decode()), "tollway_records_failed_total") == 2


def test_rejections_count_plugin_refusals_only() -> None:
    m = _metrics()
    m.observe(_record(status=403, reason="request-block.blocked"))
    m.observe(_record(status=404, reason="request-block.blocked"))  # a custom blocked_code
    m.observe(_record(status=429, reason="key-rate-limit.exceeded"))
    m.observe(_record(status=404, reason="gateway.no_route"))  # the gateway's, not a plugin's
    m.observe(_record(status=499, reason="gateway.client_closed"))
    m.observe(_record(status=502, reason="ai-proxy.upstream_unreachable"))  # a failure, not a refusal
    m.observe(_record(status=500, reason=None))  # the provider's own error
    # A block answered with a status that is no 4xx: ai-data-masking's default deny_code
    # is 200, request-block's blocked_code may be a 5xx.
    m.observe(_record(status=200, reason="ai-data-masking.denied", blocked_by="ai-data-masking"))
    m.observe(_record(status=503, reason="request-block.blocked", blocked_by="request-block"))
    samples = parse_metrics(m.render().decode())
    rejections = {(lb["plugin"], lb["code"]): v for n, lb, v in samples if n == "tollway_rejections_total"}
    assert rejections == {
        ("request-block", "403"): 1, ("request-block", "404"): 1, ("key-rate-limit", "429"): 1,
        ("ai-data-masking", "200"): 1, ("request-block", "503"): 1,
    }  # fmt: skip


def test_each_instance_has_its_own_registry() -> None:
    a, b = UsageMetrics(), UsageMetrics()  # would raise "Duplicated timeseries" on a shared registry
    a.observe(_record())
    assert metric_sum(parse_metrics(b.render().decode()), "tollway_requests_total") == 0
    assert metric_sum(parse_metrics(a.render().decode()), "tollway_requests_total") == 1


def test_label_children_are_reused() -> None:
    m = _metrics()
    for _ in range(3):
        m.observe(_record())
    assert len(m._requests) == 1 and len(m._usage) == 1 and len(m._timing) == 1
    assert metric_sum(parse_metrics(m.render().decode()), "tollway_requests_total") == 3


def test_a_duration_on_a_bucket_bound_counts_in_that_bucket_and_above() -> None:
    m = _metrics()
    m.observe(_record(latency_ms=1000.0))
    samples = parse_metrics(m.render().decode())
    buckets = {lb["le"]: v for n, lb, v in samples if n == "tollway_request_duration_seconds_bucket"}
    assert (buckets["0.5"], buckets["1.0"], buckets["2.5"], buckets["+Inf"]) == (0, 1, 1, 1)
    assert metric_sum(samples, "tollway_request_duration_seconds_sum") == 1.0
