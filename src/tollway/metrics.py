"""Prometheus metrics (SPEC §5), served as text on the admin port's ``GET /metrics``.

Each ``UsageMetrics`` has its own ``CollectorRegistry`` (never the process-global one),
so two runtimes in one process, as in tests, do not share or collide.

Label values are bounded so clients cannot grow the series without limit: ``route`` is
a configured route (or ``none``), ``consumer`` a known consumer (or ``none``), and
``model`` a configured name (a modelMapping key or value, a model_providers key, a
price-table entry, an ``allow_models`` entry), else the model the provider reported,
else ``other``. ``observe`` runs on every call's task: label children are looked up
once per label combination and kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from tollway.pricing import PriceTable

if TYPE_CHECKING:
    from tollway.config.load import LoadedConfig

CONTENT_TYPE = CONTENT_TYPE_LATEST
NONE = "none"
OTHER = "other"
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
_FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60)


def _exact(name: str) -> bool:
    return bool(name) and "*" not in name and not name.startswith("~") and "$" not in name


def configured_models(loaded: LoadedConfig) -> frozenset[str]:
    """The model names a config spells out, patterns left out."""
    from tollway.consumer_store import config_consumers  # loads key-auth's config model

    cfg = loaded.config
    names: set[str] = set()
    for provider in cfg.providers:
        for key, value in provider.modelMapping.items():
            names.update(n for n in (key, value) if _exact(n))
    for route in cfg.routes:
        names.update(n for n in route.model_providers if _exact(n))
    for consumer in config_consumers(loaded):
        names.update(n for n in consumer["allow_models"] or () if _exact(n))
    return frozenset(names)


class ModelLabels:
    """Which ``model`` label a call gets (see the module's docstring)."""

    def __init__(self, configured: frozenset[str], prices: PriceTable) -> None:
        self.configured = configured
        self.prices = prices

    def label(self, upstream: str | None, requested: str | None, reported: str | None) -> str:
        for name in (upstream, requested):
            if not name:
                continue
            if name in self.configured:
                return name
            # A dated name ("gpt-4o-2024-08-06") counts as the table entry that prices
            # it: the entry's name is bounded, the dates a client may send are not.
            priced = self.prices.resolve(name)
            if priced is not None:
                return priced[0]
        return reported or OTHER


class UsageMetrics:
    """The SPEC's metric families on a private registry; ``observe`` once per call."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "tollway_requests",
            "Calls by route, consumer, model and status.",
            ["route", "consumer", "model", "code"],
            registry=r,
        )
        self.tokens = Counter(
            "tollway_tokens",
            "Tokens by consumer, model and kind (input includes cached; output includes reasoning).",
            ["consumer", "model", "kind"],
            registry=r,
        )
        self.cost = Counter(
            "tollway_cost_usd", "Cost in US dollars of priced calls.", ["consumer", "model"], registry=r
        )
        self.duration = Histogram(
            "tollway_request_duration_seconds",
            "Time from request to the last byte.",
            ["route", "model"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.first_token = Histogram(
            "tollway_first_token_seconds",
            "Time from request to the first streamed token.",
            ["route", "model"],
            buckets=_FIRST_TOKEN_BUCKETS,
            registry=r,
        )
        self.rejections = Counter(
            "tollway_rejections", "Refusals by a plugin, by plugin and status.", ["plugin", "code"], registry=r
        )
        self.models = ModelLabels(frozenset(), PriceTable())
        self._requests: dict[tuple[str, str, str, int], Counter] = {}
        # Per (consumer, model): the input, output, cached, reasoning and cost children.
        self._usage: dict[tuple[str, str], tuple[Counter, Counter, Counter, Counter, Counter]] = {}
        self._timing: dict[tuple[str, str], tuple[Histogram, Histogram]] = {}
        self._rejections: dict[tuple[str, int], Counter] = {}

    def configure(self, loaded: LoadedConfig, prices: PriceTable) -> None:
        """Take the model names of a (re)loaded config; existing series stay."""
        self.models = ModelLabels(configured_models(loaded), prices)

    def observe(self, record: dict[str, Any], model_reported: str | None = None) -> None:
        """Count one finished call from its usage record."""
        route = record["route"] or NONE
        consumer = record["consumer"] or NONE
        model = self.models.label(record["model_upstream"], record["model_requested"], model_reported)
        status: int = record["status"]

        key = (route, consumer, model, status)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = self.requests.labels(route, consumer, model, str(status))
        child.inc()

        inp, out, cached, reasoning = (
            record["input_tokens"],
            record["output_tokens"],
            record["cached_tokens"],
            record["reasoning_tokens"],
        )
        cost = record["cost_usd"]
        if inp or out or cached or reasoning or cost:
            usage = self._usage.get((consumer, model))
            if usage is None:
                tokens = self.tokens
                usage = self._usage[(consumer, model)] = (
                    tokens.labels(consumer, model, "input"),
                    tokens.labels(consumer, model, "output"),
                    tokens.labels(consumer, model, "cached"),
                    tokens.labels(consumer, model, "reasoning"),
                    self.cost.labels(consumer, model),
                )
            if inp:
                usage[0].inc(inp)
            if out:
                usage[1].inc(out)
            if cached:
                usage[2].inc(cached)
            if reasoning:
                usage[3].inc(reasoning)
            if cost:
                usage[4].inc(cost)

        timing = self._timing.get((route, model))
        if timing is None:
            timing = self._timing[(route, model)] = (
                self.duration.labels(route, model),
                self.first_token.labels(route, model),
            )
        timing[0].observe(record["latency_ms"] / 1000.0)
        ttft = record["ttft_ms"]
        if ttft is not None:
            timing[1].observe(ttft / 1000.0)

        reason = record["reason"]
        if reason is not None and 400 <= status < 500:
            plugin = reason.partition(".")[0]
            # gateway.* are the gateway's own answers (no route, bad JSON, a client
            # that left), not a plugin's refusal.
            if plugin != "gateway":
                rkey = (plugin, status)
                rchild = self._rejections.get(rkey)
                if rchild is None:
                    rchild = self._rejections[rkey] = self.rejections.labels(plugin, str(status))
                rchild.inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every series."""
        return generate_latest(self.registry)
