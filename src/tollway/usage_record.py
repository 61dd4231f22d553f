"""The usage record (SPEC §5): what one call cost and how it went, read off its
finished exchange."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from tollway.exchange import Attempt, Exchange
from tollway.pricing import PriceTable
from tollway.timestamps import iso_of_ms, to_ms


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


def record_of(ex: Exchange, prices: PriceTable | None = None) -> UsageRecord:
    """The usage record of a finished exchange; ``cost_usd`` prices ``model_upstream``
    (None when unpriced or no table)."""
    u = ex.usage
    route = ex.route
    consumer = ex.consumer
    ttft = ex.ttft_ms
    return UsageRecord(
        to_ms(ex.ts),
        ex.request_id,
        route.name if route is not None else None,
        consumer.name if consumer is not None else None,
        ex.provider,
        ex.model_requested,
        ex.model_upstream,
        ex.status,
        ex.reason,
        ex.blocked_by,
        ex.stream,
        u.input_tokens,
        u.output_tokens,
        u.cached_tokens,
        u.reasoning_tokens,
        u.estimated,
        prices.cost(ex.model_upstream, u.input_tokens, u.output_tokens, u.cached_tokens)
        if prices is not None
        else None,
        _to_us(ex.elapsed_ms()),
        _to_us(ttft) if ttft is not None else None,
        ex.request.client_ip,
        ex.attempts,
        ex.attributes,
    )


def _to_us(ms: float) -> float:
    """Milliseconds kept to the microsecond (``round(ms, 3)`` goes through decimal
    strings, several times slower)."""
    return round(ms * 1000.0) / 1000.0
