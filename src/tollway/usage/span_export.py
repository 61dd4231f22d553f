"""Traced calls' spans to an OpenTelemetry collector: OTLP/HTTP (protobuf), from a thread.

The accountant hands each drain's traced calls to ``add`` on the event loop; that takes
a lock and appends, and never waits. A thread of the export's own makes their spans
(``spans.call_spans``) and posts them with OpenTelemetry's ``OTLPSpanExporter`` to
``{otlp_endpoint}/v1/traces``, in batches: what arrived within ``delay_s`` of the first
call waiting, or ``batch_calls`` calls, whichever comes first.

What is lost rather than waited for, each counted (``dropped``, ``failed``) and logged at
most once a minute: calls handed over while ``max_queued`` wait already (the collector is
slow or down and the thread is still retrying an earlier batch), and batches the exporter
gave up on (it retries a refused connection, 429, 502, 503 and 504 with backoff for up
to ``timeout_s``; other answers fail at once). ``stop`` sends what waits, within a bound.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import tollway
from tollway.urls import shown_url
from tollway.usage.record import CallFacts, UsageRecord
from tollway.usage.spans import call_spans, resource_of, scope_of
from tollway.usage.tracing import traces_url

if TYPE_CHECKING:
    from tollway.config.schema import TelemetryConfig

log = logging.getLogger("tollway")

Traced = list[tuple[CallFacts, UsageRecord]]

# The logger OTLPSpanExporter reports each failed batch and retry on.
_EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


class _OncePerMinute(logging.Filter):
    """Lets one record a minute through: the exporter says why a batch failed, once,
    not for every batch while a collector is down."""

    def __init__(self) -> None:
        super().__init__()
        self._last = -float("inf")

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self._last < 60.0:
            return False
        self._last = now
        return True


class _Shown(logging.Filter):
    """The endpoint as logs may show it (``urls.shown_url``), in the exporter's own
    lines: its password or a token in its query would be in every failure's."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url, self._shown = url, shown_url(url)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._url != self._shown:
            message = record.getMessage()
            if self._url in message:
                record.msg, record.args = message.replace(self._url, self._shown), None
        return True


class SpanExport:
    """See the module. ``start`` and ``stop`` run on the event loop; ``close`` asks the
    thread to send what waits and end, without waiting for it (a reload retires an
    export this way; ``wait_closed`` waits, within a bound)."""

    def __init__(
        self,
        config: TelemetryConfig,
        *,
        exporter: SpanExporter | None = None,
        max_queued: int = 2048,
        batch_calls: int = 256,
        delay_s: float = 1.0,
        timeout_s: float = 5.0,
    ) -> None:
        assert config.otlp_endpoint is not None
        self.config = config
        self.url = traces_url(config.otlp_endpoint)
        self._exporter = exporter if exporter is not None else OTLPSpanExporter(endpoint=self.url, timeout=timeout_s)
        self._resource = resource_of(config.service_name)
        self._scope = scope_of(tollway.__version__)
        self.max_queued = max_queued
        self.batch_calls = batch_calls
        self.delay_s = delay_s
        # Calls not exported: turned away with the queue full, or in a batch that failed.
        self.dropped = 0
        self.failed = 0
        self.exported = 0
        self._waiting: Traced = []
        # Calls of the batch being sent now, not yet confirmed (lost too if stopping
        # cuts it off).
        self._sending = 0
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="tollway-span-export", daemon=True)
        self._quiet = _OncePerMinute()
        self._last_report = -float("inf")
        self._reported = (0, 0)

    def start(self) -> None:
        self._shown = _Shown(self.url)
        logging.getLogger(_EXPORTER_LOGGER).addFilter(self._quiet)
        logging.getLogger(_EXPORTER_LOGGER).addFilter(self._shown)
        self._thread.start()

    def add(self, traced: Traced) -> None:
        """Queue traced calls for export; what does not fit is dropped (counted)."""
        with self._cond:
            room = self.max_queued - len(self._waiting)
            if self._closing or room <= 0:
                self.dropped += len(traced)
                return
            if len(traced) > room:
                self.dropped += len(traced) - room
                traced = traced[:room]
            was_empty = not self._waiting
            self._waiting.extend(traced)
            # Wake the thread for the first call of a batch and for a full one only.
            if was_empty or len(self._waiting) >= self.batch_calls:
                self._cond.notify()

    def close(self) -> None:
        """Send what waits, then end the thread; returns at once."""
        with self._cond:
            self._closing = True
            self._cond.notify()

    async def wait_closed(self, bound_s: float) -> None:
        """Wait up to ``bound_s`` for a closed export's thread to end; past it, abandon
        what it still holds (the exporter stops retrying; the thread dies with the
        process)."""
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join, bound_s)
        lost = len(self._waiting) + self._sending
        if self._thread.is_alive():
            log.warning(
                "telemetry: spans of %d call(s) not sent to %s within %gs of stopping",
                lost,
                shown_url(self.url),
                bound_s,
            )
        self._exporter.shutdown()
        logging.getLogger(_EXPORTER_LOGGER).removeFilter(self._quiet)
        logging.getLogger(_EXPORTER_LOGGER).removeFilter(self._shown)

    async def stop(self, bound_s: float = 5.0) -> None:
        self.close()
        await self.wait_closed(bound_s)

    # --- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._export(batch)

    def _next_batch(self) -> Traced | None:
        """The next batch (see the module), or ``None`` once closed and empty."""
        with self._cond:
            while not self._waiting and not self._closing:
                self._cond.wait()
            deadline = time.monotonic() + self.delay_s
            while not self._closing and len(self._waiting) < self.batch_calls:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            if not self._waiting:
                return None
            batch = self._waiting[: self.batch_calls]
            del self._waiting[: self.batch_calls]
            self._sending = len(batch)
            return batch

    def _export(self, batch: Traced) -> None:
        spans: list[ReadableSpan] = []
        for facts, record in batch:
            try:
                spans.extend(call_spans(facts, record, self._resource, self._scope))
            except Exception:  # a bug must cost one call's spans, not the thread
                log.exception("telemetry: the spans of request %s could not be made", facts.request_id)
        try:
            result = self._exporter.export(spans) if spans else SpanExportResult.SUCCESS
        except Exception:
            log.exception("telemetry: exporting %d span(s) failed", len(spans))
            result = SpanExportResult.FAILURE
        with self._cond:
            self._sending = 0
            if result is SpanExportResult.SUCCESS:
                self.exported += len(batch)
            else:
                self.failed += len(batch)
        self._report()

    def _report(self) -> None:
        """Says, at most once a minute, how many calls' spans were lost since it last did."""
        lost = (self.dropped, self.failed)
        now = time.monotonic()
        if lost == self._reported or now - self._last_report < 60.0:
            return
        (dropped, failed), (was_dropped, was_failed) = lost, self._reported
        self._reported, self._last_report = lost, now
        log.warning(
            "telemetry: spans of %d call(s) not sent to %s (%d turned away with %d waiting, %d in batches that failed)",
            dropped - was_dropped + failed - was_failed,
            shown_url(self.url),
            dropped - was_dropped,
            self.max_queued,
            failed - was_failed,
        )
