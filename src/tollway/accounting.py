"""The end of every call: the usage record, the access-log line, the metrics.

Runs once per call after the plugins' ``done`` hooks, on the request's own task, so it
must stay cheap: it builds a small dict and hands it to sinks that batch their I/O
(the access log and ``usage_writer`` queue it; ``metrics`` bumps counters it keeps).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any

import orjson

from tollway.exchange import Exchange
from tollway.pricing import PriceTable
from tollway.timestamps import iso_ms

if TYPE_CHECKING:
    from tollway.metrics import UsageMetrics

log = logging.getLogger("tollway")

UsageRecord = dict[str, Any]
Sink = Callable[[UsageRecord], None]


def record_of(ex: Exchange, prices: PriceTable | None = None) -> UsageRecord:
    """The usage record (SPEC §5, plus ai-statistics' ``attributes``) of a finished
    exchange; ``cost_usd`` prices ``model_upstream`` (null when unpriced or no table)."""
    u = ex.usage
    route = ex.route
    cost = (
        prices.cost(ex.model_upstream, u.input_tokens, u.output_tokens, u.cached_tokens) if prices is not None else None
    )
    return {
        "ts": iso_ms(ex.ts),
        "request_id": ex.request_id,
        "route": route.name if route is not None else None,
        "consumer": ex.consumer_name,
        "provider": ex.provider,
        "model_requested": ex.model_requested,
        "model_upstream": ex.model_upstream,
        "status": ex.status,
        "reason": ex.reason,
        "blocked_by": ex.blocked_by,
        "stream": ex.stream,
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cached_tokens": u.cached_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "tokens_estimated": u.estimated,
        "cost_usd": cost,
        "latency_ms": round(ex.elapsed_ms(), 3),
        "ttft_ms": round(ex.ttft_ms, 3) if ex.ttft_ms is not None else None,
        "client_ip": ex.request.client_ip,
        "attempts": [
            {"provider": a.provider, "status": a.status, "latency_ms": round(a.latency_ms, 3)} for a in ex.attempts
        ],
        "attributes": ex.attributes,
    }


class AccessLog:
    """One JSON line per request on stdout, written in batches (a write per request
    would cost a system call each on the hot path) from a worker thread, so a slow
    reader of stdout never stalls the event loop. Past ``MAX_PENDING`` unwritten lines,
    new ones are dropped and counted in ``dropped``."""

    MAX_PENDING = 100_000

    FIELDS = ("ts", "request_id", "route", "consumer", "model", "status", "reason", "latency_ms")

    def __init__(self, stream: IO[str] | None = None, interval_s: float = 0.1) -> None:
        self._stream = stream or sys.stdout
        self._lines: list[bytes] = []
        self._interval = interval_s
        self._task: asyncio.Task[None] | None = None
        self._writing: asyncio.Future[None] | None = None
        self.dropped = 0

    def add(self, record: UsageRecord, attributes: dict[str, Any] | None = None) -> None:
        """Queue the line for ``record``; ``attributes`` (ai-statistics' ``apply_to_log``
        ones) ride along under ``attributes``."""
        line = {
            "ts": record["ts"],
            "request_id": record["request_id"],
            "route": record["route"],
            "consumer": record["consumer"],
            "model": record["model_requested"],
            "status": record["status"],
            "reason": record["reason"],
            "latency_ms": record["latency_ms"],
        }
        if attributes:
            line["attributes"] = attributes
        if len(self._lines) >= self.MAX_PENDING:
            self.dropped += 1
            return
        self._lines.append(orjson.dumps(line))

    def _take(self) -> bytes:
        data, self._lines = b"\n".join(self._lines) + b"\n", []
        return data

    def _write(self, data: bytes) -> None:
        try:
            self._stream.write(data.decode())
            self._stream.flush()
        except (BrokenPipeError, ValueError):
            # Nobody reads stdout any more (`tollway serve | head`): the lines are
            # lost, but serving and a graceful stop must not be.
            pass

    def flush(self) -> None:
        """Writes what is pending, on the calling thread (at stop, and in tests)."""
        if self._lines:
            self._write(self._take())

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if self._lines:
                self._writing = asyncio.get_running_loop().run_in_executor(None, self._write, self._take())
                await asyncio.shield(self._writing)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._writing is not None:
            # A batch still being written in the worker thread goes first: no interleaving.
            await asyncio.wait({self._writing})
        self.flush()


class Accountant:
    """Turns each finished exchange into its usage record and hands it on: to the access
    log (with the attributes marked for it), to the metrics, and to every sink (the
    usage writer's queue). ``prices`` is swapped by a reload; a call that straddles the
    reload is priced at the new table."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        access_log: AccessLog | None = None,
        metrics: UsageMetrics | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        self.sinks = list(sinks)
        self.access_log = access_log
        self.metrics = metrics
        self.prices = prices

    def finish(self, ex: Exchange) -> None:
        record = record_of(ex, self.prices)
        if self.access_log is not None:
            self.access_log.add(record, _logged(ex))
        try:
            if self.metrics is not None:
                self.metrics.observe(record, ex.model_reported)
            for sink in self.sinks:
                sink(record)
        except Exception:  # accounting must never fail the call it accounts for
            log.exception("usage: recording request %s failed", ex.request_id)


def _logged(ex: Exchange) -> dict[str, Any] | None:
    attrs, keys = ex.attributes, ex.log_attributes
    if not attrs or not keys:
        return None
    return {k: v for k, v in attrs.items() if k in keys}
