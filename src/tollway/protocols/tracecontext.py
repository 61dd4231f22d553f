"""W3C Trace Context: the ``traceparent`` header read and written.

    traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
                 ── ──────────────────────────────── ──────────────── ──
               version   trace id (16 bytes)     parent id (8 bytes) flags (01: sampled)

``parse`` takes a client's header and answers ``None`` for anything the recommendation
says a receiver must not continue (then a new trace starts): a wrong length or
separator, upper-case or non-hex digits, an all-zero id, version ``ff``, or version
``00`` with anything after the flags. A later version is read for its first four
fields, as the recommendation asks. ``tracestate`` is opaque here: it passes through
unread when a trace is continued.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_HEADER = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
SAMPLED = 0x01


class TraceParent(NamedTuple):
    """A valid ``traceparent``'s fields: ids as integers."""

    trace_id: int
    parent_id: int
    sampled: bool


def parse(value: str) -> TraceParent | None:
    """The client's ``traceparent``, or ``None`` when it is not one to continue."""
    m = _HEADER.fullmatch(value.strip(" \t"))
    if m is None:
        return None
    version, trace_hex, parent_hex, flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    trace_id, parent_id = int(trace_hex, 16), int(parent_hex, 16)
    if not trace_id or not parent_id:
        return None
    return TraceParent(trace_id, parent_id, bool(int(flags, 16) & SAMPLED))


def format_traceparent(trace_id: int, span_id: int) -> str:
    """A version-00 ``traceparent`` naming ``span_id`` as the parent, flagged sampled
    (only sampled calls send one of their own)."""
    return f"00-{trace_id:032x}-{span_id:016x}-01"
