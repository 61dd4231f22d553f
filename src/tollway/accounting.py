"""The end of every call: the usage record and the access-log line.

Runs once per call after the plugins' ``done`` hooks, on the request's own task, so it
must stay cheap: it builds a small dict and hands it to sinks that batch their I/O.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from tollway.exchange import Exchange

UsageRecord = dict[str, Any]


def record_of(ex: Exchange) -> UsageRecord:
    """The usage record (SPEC §5) of a finished exchange."""
    u = ex.usage
    route = ex.route
    return {
        "ts": datetime.fromtimestamp(ex.ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
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
        "cost_usd": None,
        "latency_ms": round(ex.elapsed_ms(), 3),
        "ttft_ms": round(ex.ttft_ms, 3) if ex.ttft_ms is not None else None,
        "client_ip": ex.request.client_ip,
        "attempts": [
            {"provider": a.provider, "status": a.status, "latency_ms": round(a.latency_ms, 3)} for a in ex.attempts
        ],
    }


class AccessLog:
    """One JSON line per request on stdout, written in batches (a write per request
    would cost a system call each on the hot path)."""

    FIELDS = ("ts", "request_id", "route", "consumer", "model", "status", "reason", "latency_ms")

    def __init__(self, stream: IO[str] | None = None, interval_s: float = 0.1) -> None:
        self._stream = stream or sys.stdout
        self._lines: list[bytes] = []
        self._interval = interval_s
        self._task: asyncio.Task[None] | None = None

    def add(self, record: UsageRecord) -> None:
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
        self._lines.append(orjson.dumps(line))

    def flush(self) -> None:
        if self._lines:
            data, self._lines = b"\n".join(self._lines) + b"\n", []
            self._stream.write(data.decode())
            self._stream.flush()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.flush()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.flush()


class RecentRecords:
    """The last few thousand records in memory, newest last (the dashboard's recent list)."""

    def __init__(self, size: int = 2000) -> None:
        self.records: deque[UsageRecord] = deque(maxlen=size)

    def add(self, record: UsageRecord) -> None:
        self.records.append(record)


class Accountant:
    def __init__(self, sinks: list[Callable[[UsageRecord], None]]) -> None:
        self.sinks = sinks

    def finish(self, ex: Exchange) -> None:
        record = record_of(ex)
        for sink in self.sinks:
            sink(record)
