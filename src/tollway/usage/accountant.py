"""The end of every call: its usage record goes to the access log, the metrics and the
usage writer.

``Accountant.finish`` runs on each call's own task, so it only takes the call's facts
(references, nothing computed) and sets them aside. Every ``interval_s`` (and whenever
the admin API is about to answer from the metrics or the database) ``drain`` makes the
records and hands them to the log, the metrics and the sinks, in one pass: the same
per-record work done in one tight loop per batch costs a fraction of what it costs done
call by call, between the calls' own work (benchmarks/README.md has the figures).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from tollway.background import BackgroundTask, every
from tollway.exchange import Exchange
from tollway.usage.pricing import PriceTable
from tollway.usage.record import CallFacts, UsageRecord, facts_of, settle

if TYPE_CHECKING:
    from tollway.usage.access_log import AccessLog
    from tollway.usage.metrics import UsageMetrics

log = logging.getLogger("tollway")

# A sink takes a batch of records (the usage writer queues them for the database).
Sink = Callable[[list[UsageRecord]], None]


class Accountant:
    """Accounts for every finished exchange (see the module's docstring)."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        access_log: AccessLog | None = None,
        metrics: UsageMetrics | None = None,
        prices: PriceTable | None = None,
        interval_s: float = 0.1,
    ) -> None:
        self.sinks = list(sinks)
        self.access_log = access_log
        self.metrics = metrics
        self.prices = prices
        self.interval_s = interval_s
        self._finished: list[CallFacts] = []
        self._timer = BackgroundTask("accountant", every(interval_s, self.drain))
        self._last_error = -float("inf")

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
        if not self._timer.running:
            self.drain()

    def drain(self) -> None:
        """Make the records of every call set aside so far and hand them to the log, the
        metrics and the sinks. A record that cannot be made (a bug) is logged and skipped."""
        finished, self._finished = self._finished, []
        if not finished:
            return
        access_log, metrics, prices = self.access_log, self.metrics, self.prices
        records: list[UsageRecord] = []
        for facts in finished:
            try:
                record, reported, logged = settle(facts, prices)
                records.append(record)
                if access_log is not None:
                    access_log.add(record, logged)
                if metrics is not None:
                    metrics.observe(record, reported)
            except Exception:
                self._log_error(f"accounting for request {facts.request_id}")
        for sink in self.sinks:
            try:
                sink(records)
            except Exception:
                self._log_error(f"handing {len(records)} record(s) on")

    def _log_error(self, what: str) -> None:
        # A bug here would repeat for every record: say it once a minute, not per call.
        now = time.monotonic()
        if now - self._last_error >= 60.0:
            self._last_error = now
            log.exception("usage: %s failed", what)

    def start(self) -> None:
        self._timer.start()

    async def stop(self) -> None:
        """Stop the timer and drain; calls finishing later are handed on at once."""
        await self._timer.stop()
        self.drain()
