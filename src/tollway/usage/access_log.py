"""The access log: one JSON line per call on stdout."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import IO, Any

import orjson

from tollway.background import BackgroundTask, every
from tollway.usage.record import UsageRecord
from tollway.usage.storable import MAX_TEXT


class AccessLog:
    """One JSON line per request on stdout, written in batches (a write per request
    would cost a system call each on the hot path) from a worker thread, so a slow
    reader of stdout never stalls the event loop. Past ``MAX_PENDING`` unwritten lines,
    new ones are dropped and counted in ``dropped``.

    Lines go straight into one growing buffer: orjson's output, used at once and
    dropped, is cheaper than the same bytes kept per line until the flush."""

    MAX_PENDING = 100_000

    def __init__(self, stream: IO[str] | None = None, interval_s: float = 0.1) -> None:
        self._stream = stream or sys.stdout
        self._buffer = bytearray()
        self._pending = 0
        self._writer = BackgroundTask("access-log", every(interval_s, self._write_pending))
        self._writing: asyncio.Future[None] | None = None
        self.dropped = 0

    def add(self, record: UsageRecord, attributes: dict[str, Any] | None = None) -> None:
        """Queue the line for ``record``; ``attributes`` (ai-statistics' ``apply_to_log``
        ones) ride along under ``attributes``."""
        if self._pending >= self.MAX_PENDING:
            self.dropped += 1
            return
        model, request_id = record.model_requested, record.request_id
        # Both are the client's to choose: a line says at most as much as the record keeps.
        if model is not None and len(model) > MAX_TEXT:
            model = model[:MAX_TEXT]
        if len(request_id) > MAX_TEXT:
            request_id = request_id[:MAX_TEXT]
        line: dict[str, Any] = {
            "ts": record.ts,
            "request_id": request_id,
            "route": record.route,
            "consumer": record.consumer,
            "model": model,
            "status": record.status,
            "reason": record.reason,
            "latency_ms": record.latency_ms,
        }
        if attributes:
            line["attributes"] = attributes
        try:
            data = orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:
            # A lone surrogate or a huge number somewhere (a client's model name, an
            # ai-statistics value): the standard library writes those, escaped.
            data = (json.dumps(line, default=str) + "\n").encode()
        self._buffer += data
        self._pending += 1

    def _take(self) -> bytearray:
        data, self._buffer, self._pending = self._buffer, bytearray(), 0
        return data

    def _write(self, data: bytearray) -> None:
        try:
            binary = getattr(self._stream, "buffer", None)
            if binary is not None:
                # The lines are bytes already: straight to stdout's binary layer (after
                # whatever the text layer holds), not decoded and encoded again.
                self._stream.flush()
                binary.write(data)
                binary.flush()
            else:
                self._stream.write(data.decode())
                self._stream.flush()
        except (BrokenPipeError, ValueError):
            # Nobody reads stdout any more (`tollway serve | head`): the lines are
            # lost, but serving and a graceful stop must not be.
            pass

    def flush(self) -> None:
        """Writes what is pending, on the calling thread (at stop, and in tests)."""
        if self._pending:
            self._write(self._take())

    async def _write_pending(self) -> None:
        if self._pending:
            self._writing = asyncio.get_running_loop().run_in_executor(None, self._write, self._take())
            await asyncio.shield(self._writing)

    def start(self) -> None:
        self._writer.start()

    async def stop(self) -> None:
        await self._writer.stop()
        if self._writing is not None:
            # A batch still being written in the worker thread goes first: no interleaving.
            await asyncio.wait({self._writing})
        self.flush()
