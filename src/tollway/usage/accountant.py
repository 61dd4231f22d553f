"""The end of every call: its usage record goes to the access log, the metrics and the
usage writer, and a traced call's record to the span export (telemetry on).

``Accountant.finish`` runs on each call's own task, so it only takes the call's facts
(references, nothing computed) and sets them aside. At most ``interval_s`` (5 ms) after
the first call set aside (and whenever the admin API is about to answer from the metrics
or the database), ``drain`` makes the records and hands them to the log, the metrics and
the sinks, in one pass: the same per-record work done in one tight loop per batch costs a
fraction of what it costs done call by call, between the calls' own work
(benchmarks/README.md has the figures).

The interval is what a kill can cost: the usage writer journals each batch it is handed
with one write, so a SIGKILL loses the records of at most the last ``interval_s`` (plus
the event loop's lag), under the 10 ms SPEC §14 allows. No timer runs while no call ends.
A busy loop runs its timers late (one turn of it can take milliseconds under load), so
once the timer is due the first call to end drains the records set aside, without
waiting for the loop to come round to the timer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from tollway.exchange import Exchange
from tollway.protocols.usage import Usage
from tollway.usage.pricing import PriceTable, billed_per
from tollway.usage.record import UNIT_BILLED_APIS, CallFacts, UsageRecord, facts_of, settle
from tollway.usage.storable import MAX_TEXT

if TYPE_CHECKING:
    from tollway.usage.access_log import AccessLog
    from tollway.usage.metrics import UsageMetrics

log = logging.getLogger("tollway")
# How many unpriced models are named in the log, each once per process.
_UNPRICED_SAID = 100

# A sink takes a batch of records (the usage writer journals and queues them).
Sink = Callable[[list[UsageRecord]], None]
# Takes a batch of traced calls, each with its record (``span_export.SpanExport.add``).
TraceSink = Callable[[list[tuple[CallFacts, UsageRecord]]], None]


class Accountant:
    """Accounts for every finished exchange (see the module's docstring)."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        access_log: AccessLog | None = None,
        metrics: UsageMetrics | None = None,
        prices: PriceTable | None = None,
        traces: TraceSink | None = None,
        interval_s: float = 0.005,
    ) -> None:
        self.sinks = list(sinks)
        # Where traced calls go; None while telemetry is off (a reload may set it).
        self.traces = traces
        self.access_log = access_log
        self.metrics = metrics
        self.prices = prices
        self.interval_s = interval_s
        self._finished: list[CallFacts] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        # The drain to come, set by the first call that ends after the last drain.
        self._timer: asyncio.TimerHandle | None = None
        self._last_error = -float("inf")
        # Models whose calls went unpriced, each said once (names come from clients: bounded).
        self._unpriced: set[str] = set()

    def reprice(self, prices: PriceTable) -> None:
        """Price calls from now on at ``prices`` (a reload): the calls that finished
        before are priced at the old table first; a call still running is priced at the
        new one."""
        self.drain()
        self.prices = prices

    def finish(self, ex: Exchange) -> None:
        """Set the call's facts aside; its record reaches log, metrics and sinks at the
        next drain (at once when the accountant is not running: in tests, after ``stop``)."""
        self._finished.append(facts_of(ex))
        if ex.side_calls:
            # Calls made on its behalf (ai-cache's embeddings) are records of their own.
            self._finished.extend(facts_of(side) for side in ex.side_calls)
        self._set_aside()

    def refused_at_edge(self, status: int, reason: str, request_id: str, client_ip: str) -> None:
        """A request the HTTP edge answered itself, before the gateway could read it (a
        head past its bounds, bytes that are not HTTP/1.1): a record with its status,
        reason, request id and the peer's address, nothing else (no header was read).
        Cheap, and at most one per connection (the edge ends the connection with it): a
        flood of them costs the record path less than as many valid requests."""
        facts = CallFacts(
            time.time(), 0.0, request_id, None, None, None, None, None, status, reason, None, False, Usage(), None,
            client_ip, [], None, None, "other",
        )  # fmt: skip
        self._finished.append(facts)
        self._set_aside()

    def _set_aside(self) -> None:
        """After a record is set aside: the next drain, once ``interval_s`` is up (at once
        without a running loop, or when a busy loop has not yet run a timer that is due:
        a loop that keeps up drains by its timer alone)."""
        loop, timer = self._loop, self._timer
        if loop is None:
            self.drain()
        elif timer is None:
            self._timer = loop.call_later(self.interval_s, self._tick)
        elif timer.when() <= loop.time():
            timer.cancel()
            self._tick()

    def _tick(self) -> None:
        self._timer = None
        self.drain()

    def drain(self) -> None:
        """Make the records of every call set aside so far and hand them to the log, the
        metrics and the sinks. A record that cannot be made (a bug) is logged and skipped."""
        finished, self._finished = self._finished, []
        if not finished:
            return
        access_log, metrics, prices = self.access_log, self.metrics, self.prices
        records: list[UsageRecord] = []
        traced: list[tuple[CallFacts, UsageRecord]] = []
        for facts in finished:
            try:
                record, logged = settle(facts, prices)
                records.append(record)
                # A call the provider answered, or one the client left (499: the
                # provider took the prompt, and bills it).
                if record.cost_usd is None and record.model_upstream and (record.status < 400 or record.status == 499):
                    self._unpriced_model(record)
                if access_log is not None:
                    access_log.add(record, logged)
                if metrics is not None:
                    metrics.observe(record)
                if facts.trace is not None:
                    traced.append((facts, record))
            except Exception:
                self._log_error(f"accounting for request {facts.request_id}")
        for sink in self.sinks:
            try:
                sink(records)
            except Exception:
                self._log_error(f"handing {len(records)} record(s) on")
        traces = self.traces
        if traced and traces is not None:
            try:
                traces(traced)
            except Exception:
                self._log_error(f"handing {len(traced)} traced call(s) on")

    def _unpriced_model(self, record: UsageRecord) -> None:
        model = record.model_upstream
        if self.prices is None or not model or model in self._unpriced or len(self._unpriced) >= _UNPRICED_SAID:
            return
        self._unpriced.add(model)
        if record.api in UNIT_BILLED_APIS and not record.input_tokens and not record.output_tokens:
            # Answered with no token usage (``call_cost``): a price under pricing: would
            # not help, per token.
            unit = billed_per(model)
            if unit is not None:
                why = f"it is billed per {unit}, which the price table (per million tokens) cannot price"
            else:
                why = "its answer reported no token usage (as those of models billed per image, character or minute)"
            log.warning(
                "usage: model %r has no price per token: %s; its %s calls are recorded with cost_usd null, "
                "and refused to a consumer or group with a budget",
                model[:MAX_TEXT], why, record.api,
            )  # fmt: skip
            return
        log.warning(
            "usage: model %r has no price: its calls are recorded with cost_usd null (price it under pricing:)",
            model[:MAX_TEXT],
        )

    def _log_error(self, what: str) -> None:
        # A bug here would repeat for every record: say it once a minute, not per call.
        now = time.monotonic()
        if now - self._last_error >= 60.0:
            self._last_error = now
            log.exception("usage: %s failed", what)

    def start(self) -> None:
        """Drain on a timer from now on (inside the running loop)."""
        self._loop = asyncio.get_running_loop()

    async def stop(self) -> None:
        """Stop the timer and drain; calls finishing later are handed on at once."""
        self._loop = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.drain()
