"""Which calls are traced, decided once per call when it starts (telemetry on only).

A call that brings a valid ``traceparent`` continues the client's trace, and is traced
exactly when the client's sampled flag is set (so a trace is recorded whole or not at
all); any other call starts a trace of its own, kept with probability
``telemetry.sample_ratio``. A traced call gets a ``CallTrace`` on its exchange; one that
is not gets nothing and goes on exactly as with telemetry off (the client's
``traceparent`` passes to the provider unchanged).

No OpenTelemetry code runs or is imported here: this is on the request path. The spans
are built after the call (``spans``) and sent from a thread (``span_export``).
"""

from __future__ import annotations

import os
import random

from tollway.exchange import CallTrace
from tollway.headers import Headers
from tollway.protocols import tracecontext

_MASK64 = (1 << 64) - 1


class Sampler:
    """Begins the trace of each sampled call (see the module)."""

    __slots__ = ("_bits", "_bound", "ratio")

    def __init__(self, ratio: float) -> None:
        self.ratio = ratio
        # A call is kept when the low 64 bits of its new trace id fall below this, as
        # OpenTelemetry's TraceIdRatioBased sampler decides.
        self._bound = round(ratio * (1 << 64))
        # Ids need to be unique, not secret: a seeded generator, no system call per call.
        self._bits = random.Random(os.urandom(32)).getrandbits

    def begin(self, headers: Headers) -> CallTrace | None:
        """The trace of a call with these request headers, or ``None`` when it is not
        sampled."""
        value = headers.get("traceparent")
        if value is not None and not headers.repeated("traceparent"):
            parent = tracecontext.parse(value)
            if parent is not None:
                if not parent.sampled:
                    return None
                return CallTrace(parent.trace_id, self._bits(64) or 1, parent.parent_id, self._bits)
        trace_id = self._bits(128)
        if (trace_id & _MASK64) >= self._bound or not trace_id:
            return None
        return CallTrace(trace_id, self._bits(64) or 1, 0, self._bits)


def traces_url(otlp_endpoint: str) -> str:
    """The collector's traces URL: ``/v1/traces`` added to the base URL's path, unless it
    is there (a query stays after it)."""
    url, sep, query = otlp_endpoint.partition("?")
    url = url.rstrip("/")
    url = url if url.endswith("/v1/traces") else url + "/v1/traces"
    return url + sep + query
