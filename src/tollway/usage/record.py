"""The usage record (SPEC §5): what one call cost and how it went, read off its
finished exchange."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from tollway.exchange import Attempt, CallTrace, Exchange
from tollway.protocols.apis import recorded_api
from tollway.protocols.usage import Usage
from tollway.usage.pricing import PriceTable
from tollway.usage.timestamps import iso_of_ms, to_ms

if TYPE_CHECKING:
    from tollway.consumers.consumer import Consumer
    from tollway.routing.routes import Route


class UsageRecord(NamedTuple):
    """One call's usage record (SPEC §5), plus ai-statistics' ``attributes``.

    A tuple, not a dict: one is made per call and waits in the writer's queue until its
    batch is written, so it should be small and quick to build (measured: a 22-key dict
    per call, held for a batch, cost several times what the tuple does). ``as_dict``
    gives the SPEC's JSON shape. ``ts_ms`` is the start of the call in milliseconds since
    the epoch (the SPEC's ``ts`` is its ISO form); ``attempts`` are the exchange's own.
    """

    ts_ms: int
    request_id: str
    route: str | None
    consumer: str | None
    provider: str | None
    model_requested: str | None
    model_upstream: str | None
    status: int
    reason: str | None
    blocked_by: str | None
    stream: bool
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    tokens_estimated: bool
    cost_usd: float | None
    latency_ms: float
    ttft_ms: float | None
    client_ip: str | None
    attempts: Sequence[Attempt]
    attributes: dict[str, Any] | None
    # Which API the call was (``protocols.apis.Api``: chat, messages, responses, …);
    # None only in records stored before it was kept.
    api: str | None
    # What ai-cache made of the call (``exchange.CacheOutcome``; None: no ai-cache, or a
    # record stored before it was kept). A hit ("hit", "semantic") has the stored
    # answer's tokens, ``cost_usd`` 0 and, in ``cost_saved_usd``, what those tokens cost
    # when the answer was made (None when the model is unpriced, and for every other call).
    cache: str | None = None
    cost_saved_usd: float | None = None
    # An MCP call's JSON-RPC method and tool (None for every other call, and in records
    # stored before they were kept).
    mcp_method: str | None = None
    mcp_tool: str | None = None
    # Prompt tokens written to the provider's prompt cache (Anthropic's
    # ``cache_creation_input_tokens``): part of ``input_tokens``, priced at the model's
    # cache-write price (0 in records stored before they were kept). Last, as the
    # column it was added as.
    cache_write_tokens: int = 0

    @property
    def ts(self) -> str:
        return iso_of_ms(self.ts_ms)

    def attempts_json(self) -> list[dict[str, Any]]:
        return [{"provider": a.provider, "status": a.status, "latency_ms": _to_us(a.latency_ms)} for a in self.attempts]

    def as_dict(self) -> dict[str, Any]:
        """The SPEC §5 record as JSON answers show it (``ts`` first, ISO-8601)."""
        d: dict[str, Any] = {"ts": self.ts}
        d.update(zip(self._fields[1:], self[1:], strict=True))
        d["attempts"] = self.attempts_json()
        return d


@dataclass(slots=True)
class CallFacts:
    """What a call leaves for its usage record, taken on the call's own task the moment it
    ends: references and numbers as they are, nothing formatted, priced or counted (that
    is ``settle``'s work, done for many calls at once). The exchange is over, so nothing
    changes what they refer to.
    """

    start: float  # time.time() when the call began
    duration_s: float
    request_id: str
    route: Route | None
    consumer: Consumer | None
    provider: str | None
    model_requested: str | None
    model_upstream: str | None
    status: int
    reason: str | None
    blocked_by: str | None
    stream: bool
    usage: Usage
    ttft_ms: float | None
    client_ip: str
    attempts: list[Attempt]
    attributes: dict[str, Any] | None
    log_attributes: frozenset[str] | None
    api: str
    cache: str | None = None
    mcp_method: str | None = None
    mcp_tool: str | None = None
    # A traced call's ids (telemetry on, the call sampled); its spans are built from it
    # and the record (``tollway.usage.spans``).
    trace: CallTrace | None = None
    # ``Exchange.priced``: the cost a budget's settlement counted, which the record keeps.
    priced: tuple[float | None, float | None] | None = None
    # ``Exchange.span_attributes``: attribute key → the span attribute it is set as.
    span_attributes: dict[str, str] | None = None


def facts_of(ex: Exchange) -> CallFacts:
    trace = ex.trace
    if trace is not None:
        trace.end(ex)
    return CallFacts(
        ex.ts,
        (ex.ended or time.perf_counter()) - ex.started,
        ex.request_id,
        ex.route,
        ex.consumer,
        ex.provider,
        ex.model_requested,
        ex.model_upstream,
        ex.status,
        ex.reason,
        ex.blocked_by,
        ex.stream,
        ex.usage,
        ex.ttft_ms,
        ex.request.client_ip,
        ex.attempts,
        ex.attributes,
        ex.log_attributes,
        recorded_api(ex.api, ex.api_path),
        ex.cache,
        ex.mcp_method,
        ex.mcp_tool,
        trace,
        ex.priced,
        ex.span_attributes,
    )


# A call's usage record and the ai-statistics attributes marked for the log.
Settled = tuple[UsageRecord, dict[str, Any] | None]
# Builds a UsageRecord from a tuple of its values without the Python-level __new__ a
# NamedTuple call goes through (a drain makes thousands a second).
_make_record = tuple.__new__


def settle(facts: CallFacts, prices: PriceTable | None) -> Settled:
    """The usage record of a call; ``cost_usd`` prices ``model_upstream`` (None when
    unpriced or no table), unless the call was priced already (``CallFacts.priced``)."""
    u = facts.usage
    route, consumer, model_upstream, ttft = facts.route, facts.consumer, facts.model_upstream, facts.ttft_ms
    cache = facts.cache
    priced = facts.priced
    cost, saved = priced if priced is not None else call_cost(prices, model_upstream, u, cache, facts.api, facts.status)
    values = (
        to_ms(facts.start),
        facts.request_id,
        route.name if route is not None else None,
        consumer.name if consumer is not None else None,
        facts.provider,
        facts.model_requested,
        model_upstream,
        facts.status,
        facts.reason,
        facts.blocked_by,
        facts.stream,
        u.input_tokens,
        u.output_tokens,
        u.cached_tokens,
        u.reasoning_tokens,
        u.estimated,
        cost,
        _to_us(facts.duration_s * 1000.0),
        _to_us(ttft) if ttft is not None else None,
        facts.client_ip,
        facts.attempts,
        facts.attributes,
        facts.api,
        cache,
        saved,
        facts.mcp_method,
        facts.mcp_tool,
        u.cache_write_tokens,
    )
    record = _make_record(UsageRecord, values)
    attributes, log_keys = facts.attributes, facts.log_attributes
    logged = {k: v for k, v in attributes.items() if k in log_keys} if attributes and log_keys else None
    return record, logged


# APIs some of whose models are billed per unit (image, character, minute of audio:
# ``pricing.billed_per``) and answer no token usage.
UNIT_BILLED_APIS = frozenset({"images", "audio"})


def call_cost(
    prices: PriceTable | None, model_upstream: str | None, u: Usage, cache: str | None, api: str, status: int
) -> tuple[float | None, float | None]:
    """A call's ``cost_usd`` and ``cost_saved_usd``: the one pricing of a call, which
    the record and a budget's settlement (``tollway.budgets``) both use. An images or
    audio call the provider answered (or the client left, 499) without reporting token
    usage cost what no token count says: None (unknown), not the 0 its counts price at.
    A moderation call the price table does not know costs nothing (no has-no-price
    warning telling the operator to price a free API)."""
    if not u.reported and api in UNIT_BILLED_APIS and (status < 400 or status == 499):
        return None, None
    cost = (
        prices.cost(
            model_upstream,
            u.input_tokens,
            u.output_tokens,
            u.cached_tokens,
            u.cache_write_tokens,
            u.cache_write_1h_tokens,
        )
        if prices is not None
        else None
    )
    if cache == "hit" or cache == "semantic":
        # Answered from the cache: no provider was paid; the tokens are what it saved.
        return 0.0, cost
    if cost is None and api == "moderations":
        return 0.0, None  # OpenAI's moderation is free (a priced one, Mistral's, is priced above)
    return cost, None


def record_of(ex: Exchange, prices: PriceTable | None = None) -> UsageRecord:
    """The usage record of a finished exchange (``settle`` of its facts, at once)."""
    return settle(facts_of(ex), prices)[0]


def _to_us(ms: float) -> float:
    """Milliseconds kept to the microsecond (``round(ms, 3)`` goes through decimal
    strings, several times slower)."""
    return round(ms * 1000.0) / 1000.0
