"""Prometheus metrics (SPEC §5), served as text on the admin port's ``GET /metrics``.

``observe`` runs on every call's task, so the counts are plain numbers in dicts keyed by
label values (no lock, no label lookup per call), and a collector turns them into
Prometheus families only when ``/metrics`` is scraped. Calls and scrapes share the event
loop's thread, so nothing else touches the dicts meanwhile. Each ``UsageMetrics`` has its
own ``CollectorRegistry`` (never the process-global one), so two runtimes in one
process, as in tests, do not share or collide.

Label values are bounded so clients cannot grow the series without limit: ``route`` is
a configured route (or ``none``), ``consumer`` a known consumer (or ``none``), and
``model`` the name the call's record carries (``model_upstream``, else
``model_requested``: the dashboard's and ``/api/usage?by=model``'s name) whenever the
config spells it out (a modelMapping key or value, a model_providers key, an
``allow_models`` entry) or the price table prices it (a dated name such as
``claude-3-5-haiku-latest`` or ``gpt-4o-2024-08-06`` under its entry), so that metrics,
records and the dashboard name a model alike and can be joined on it; else ``other``
(never some other name of the call, which would count it where the dashboard does not).
Priced names that the config does not spell out are taken as they come, up to
``PRICED_NAMES`` of them for the process's life (a reload keeps those taken); past that
a priced name is counted under its table entry (``gpt-4o``): a provider that echoes a
client's model could otherwise let clients mint a series per name.

``tollway_cache_requests_total{result}`` counts what ai-cache made of each call it
looked at (``hit``, ``semantic``, ``miss``, ``skip``; calls no ai-cache applies to are
not counted).

``tollway_mcp_calls_total{server,tool,outcome}`` counts MCP calls (records with ``api``
``mcp``), one per JSON-RPC request: ``server`` is the route's configured MCP server,
``tool`` the tool of a ``tools/call`` when the config names it (``configure_mcp``: an
exact ``allow_tools`` entry, a REST tool) else ``other``, and ``none`` for every other
method; ``outcome`` is ``ok``, ``error`` (the server answered a JSON-RPC error or a tool
result marked ``isError``), ``refused`` (a 4xx of the gateway's: key-auth, limits,
request-block, ``allow_tools``) or ``failed`` (the server unreachable, or its answer
broken off).

``tollway_records_failed_total`` counts the usage records the database refused (kept in
the dead-letter file; see ``usage.writer``).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from tollway.usage.pricing import PriceTable

if TYPE_CHECKING:
    from tollway.config.load import LoadedConfig
    from tollway.consumers.consumer import ConsumerInfo
    from tollway.usage.record import UsageRecord

CONTENT_TYPE = CONTENT_TYPE_LATEST
NONE = "none"
OTHER = "other"
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
_FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60)
_TOKEN_KINDS = ("input", "output", "cached", "reasoning", "cache_write")


def _exact(name: str) -> bool:
    return bool(name) and "*" not in name and not name.startswith("~") and "$" not in name


def configured_models(loaded: LoadedConfig, consumers: Iterable[ConsumerInfo]) -> frozenset[str]:
    """The model names a config spells out, patterns left out: its providers' mappings,
    its routes' ``model_providers``, its consumers' ``allow_models``."""
    cfg = loaded.config
    names: set[str] = set()
    for provider in cfg.providers:
        for key, value in provider.modelMapping.items():
            names.update(n for n in (key, value) if _exact(n))
    for route in cfg.routes:
        names.update(n for n in route.model_providers if _exact(n))
    for consumer in consumers:
        names.update(n for n in consumer["allow_models"] or () if _exact(n))
    return frozenset(names)


# Priced names the config does not spell out, taken as labels as they come (see the
# module's docstring).
PRICED_NAMES = 256


class ModelLabels:
    """Which ``model`` label a call gets (see the module's docstring). ``taken`` are the
    priced names already labelled as themselves: a reload passes them on, as their series
    outlive it, so that reloads do not widen the bound."""

    def __init__(self, configured: frozenset[str], prices: PriceTable, taken: set[str] | None = None) -> None:
        self.configured = configured
        self.prices = prices
        self.taken: set[str] = set() if taken is None else taken

    def label(self, upstream: str | None, requested: str | None) -> str:
        # The record's own name, as the dashboard groups by it.
        name = upstream or requested
        if not name:
            return OTHER
        if name in self.configured or name in self.taken:
            return name
        priced = self.prices.resolve(name)
        if priced is None:
            return OTHER
        if len(self.taken) < PRICED_NAMES:
            self.taken.add(name)
            return name
        # The names a client may ask for are not bounded; the table's entries are.
        return priced[0]


class Histogram:
    """One histogram series: a count per bucket (not cumulative; the last is +Inf) and the sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le = "≤").
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        # Bounds spelt as prometheus-client spells them ("1.0", "+Inf").
        for bound, count in zip(map(floatToGoString, (*self.bounds, math.inf)), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


# The reasons of an answer an MCP server gave itself (a JSON-RPC error, a tool's error):
# the server answering, not the gateway refusing.
_SERVERS_OWN = frozenset({"mcp.server_error", "mcp.tool_error"})


class UsageMetrics:
    """The SPEC's metric families, counted in plain dicts; ``observe`` once per call."""

    def __init__(self) -> None:
        self.models = ModelLabels(frozenset(), PriceTable())
        self._requests: dict[tuple[str, str, str, int], int] = {}
        # Per (consumer, model): input, output, cached, reasoning and cache-write tokens,
        # and cost.
        self._usage: dict[tuple[str, str], list[float]] = {}
        # Per (route, model): request duration, time to first token.
        self._timing: dict[tuple[str, str], tuple[Histogram, Histogram]] = {}
        self._rejections: dict[tuple[str, int], int] = {}
        self._cache: dict[str, int] = {}
        self._mcp: dict[tuple[str, str, str], int] = {}
        self._mcp_tools: frozenset[tuple[str, str]] = frozenset()
        self.records_failed = 0
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def configure(self, model_names: frozenset[str], prices: PriceTable) -> None:
        """Take the model names of a (re)loaded config (``configured_models``); existing
        series stay."""
        self.models = ModelLabels(model_names, prices, self.models.taken)

    def configure_mcp(self, tools: frozenset[tuple[str, str]]) -> None:
        """Take the (server, tool) names a (re)loaded config spells out; existing series stay."""
        self._mcp_tools = tools

    def _observe_mcp(self, record: UsageRecord) -> None:
        server = record.provider or NONE
        tool = record.mcp_tool
        label = NONE if tool is None else tool if (server, tool) in self._mcp_tools else OTHER
        status, reason = record.status, record.reason
        if reason in _SERVERS_OWN:
            outcome = "error"  # (a REST tool's error has the status its service answered)
        elif status >= 500:
            outcome = "failed"
        elif status >= 400:
            outcome = "refused"
        else:
            outcome = "ok"
        key = (server, label, outcome)
        self._mcp[key] = self._mcp.get(key, 0) + 1

    def record_failed(self) -> None:
        """Count one usage record the database refused."""
        self.records_failed += 1

    def observe(self, record: UsageRecord) -> None:
        """Count one finished call from its usage record."""
        route = record.route or NONE
        consumer = record.consumer or NONE
        model = self.models.label(record.model_upstream, record.model_requested)
        status = record.status

        requests = self._requests
        key = (route, consumer, model, status)
        requests[key] = requests.get(key, 0) + 1

        inp, out, cached, reasoning, written, cost = (
            record.input_tokens,
            record.output_tokens,
            record.cached_tokens,
            record.reasoning_tokens,
            record.cache_write_tokens,
            record.cost_usd,
        )
        if inp or out or cached or reasoning or written or cost:
            usage = self._usage.get((consumer, model))
            if usage is None:
                usage = self._usage[(consumer, model)] = [0, 0, 0, 0, 0, 0.0]
            usage[0] += inp
            usage[1] += out
            usage[2] += cached
            usage[3] += reasoning
            usage[4] += written
            if cost:
                usage[5] += cost

        timing = self._timing.get((route, model))
        if timing is None:
            timing = self._timing[(route, model)] = (Histogram(_DURATION_BUCKETS), Histogram(_FIRST_TOKEN_BUCKETS))
        timing[0].observe(record.latency_ms / 1000.0)
        ttft = record.ttft_ms
        if ttft is not None:
            timing[1].observe(ttft / 1000.0)

        cache = record.cache
        if cache is not None:
            self._cache[cache] = self._cache.get(cache, 0) + 1
        if record.api == "mcp":
            self._observe_mcp(record)

        reason = record.reason
        if reason is not None and reason not in _SERVERS_OWN and (400 <= status < 500 or record.blocked_by is not None):
            # A 4xx a plugin's reason names, or any answer of a plugin that blocked the
            # call (request-block's blocked_code and ai-data-masking's deny_code may be
            # 2xx or 5xx). gateway.* are the gateway's own answers (no route, bad JSON, a
            # client that left), not a plugin's refusal; nor is an MCP server's own error
            # (_SERVERS_OWN), relayed with the status it came with.
            plugin = record.blocked_by or reason.partition(".")[0]
            if plugin != "gateway":
                rkey = (plugin, status)
                self._rejections[rkey] = self._rejections.get(rkey, 0) + 1

    def collect(self) -> Iterator[Metric]:
        """The families as of now (the registry calls this at each scrape)."""
        requests = CounterMetricFamily(
            "tollway_requests",
            "Calls by route, consumer, model and status.",
            labels=["route", "consumer", "model", "code"],
        )
        for (route, consumer, model, status), n in self._requests.items():
            requests.add_metric([route, consumer, model, str(status)], n)
        tokens = CounterMetricFamily(
            "tollway_tokens",
            "Tokens by consumer, model and kind (input includes cached and cache_write; output includes reasoning).",
            labels=["consumer", "model", "kind"],
        )
        cost = CounterMetricFamily(
            "tollway_cost_usd", "Cost in US dollars of priced calls.", labels=["consumer", "model"]
        )
        for (consumer, model), usage in self._usage.items():
            for kind, amount in zip(_TOKEN_KINDS, usage, strict=False):
                tokens.add_metric([consumer, model, kind], amount)
            cost.add_metric([consumer, model], usage[5])
        duration = HistogramMetricFamily(
            "tollway_request_duration_seconds", "Time from request to the last byte.", labels=["route", "model"]
        )
        first_token = HistogramMetricFamily(
            "tollway_first_token_seconds", "Time from request to the first streamed token.", labels=["route", "model"]
        )
        for (route, model), (total, first) in self._timing.items():
            duration.add_metric([route, model], total.cumulative(), total.total)
            first_token.add_metric([route, model], first.cumulative(), first.total)
        rejections = CounterMetricFamily(
            "tollway_rejections", "Refusals by a plugin, by plugin and status.", labels=["plugin", "code"]
        )
        for (plugin, status), n in self._rejections.items():
            rejections.add_metric([plugin, str(status)], n)
        cache = CounterMetricFamily(
            "tollway_cache_requests", "Calls ai-cache looked at, by what it made of them.", labels=["result"]
        )
        for result, n in self._cache.items():
            cache.add_metric([result], n)
        mcp = CounterMetricFamily(
            "tollway_mcp_calls", "MCP requests by server, tool and outcome.", labels=["server", "tool", "outcome"]
        )
        for labels, n in self._mcp.items():
            mcp.add_metric(list(labels), n)
        failed = CounterMetricFamily(
            "tollway_records_failed",
            "Usage records the database refused, kept in the dead-letter file.",
            value=self.records_failed,
        )
        yield from (requests, tokens, cost, duration, first_token, rejections, cache, mcp, failed)

    def render(self) -> bytes:
        """The Prometheus text exposition of every series."""
        return generate_latest(self.registry)
