"""What a usage question asks: a grouping and a time window, as the admin API and
``tollway usage`` take them (``by=consumer``, ``since=24h``, ``until=2026-01-31``).

    UsageQueryError     a parameter that does not parse, or is out of range; the message
                        names it
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

# ``hour`` is Tollway's own addition (the dashboard's traffic chart over short windows).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
GROUPINGS = ("consumer", "model", "route", "provider", "day", "hour")
# ASCII digits only, and few of them: int() of thousands of digits raises.
_RELATIVE = re.compile(r"([0-9]{1,12})([smhdw])")
_LIMIT = re.compile(r"[0-9]{1,4}")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_LIMIT = 1000
# The times a window may name: what a datetime can hold (years 1 to 9999), in ms.
_EARLIEST_MS = round(datetime(1, 1, 1, tzinfo=UTC).timestamp() * 1000)
_LATEST_MS = round(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp() * 1000)


class UsageQueryError(ValueError):
    """A usage parameter that does not parse."""


@dataclass(frozen=True, slots=True)
class Window:
    """Records with ``since_ms <= ts < until_ms`` (milliseconds since the epoch, UTC);
    ``None`` leaves that side open."""

    since_ms: int | None = None
    until_ms: int | None = None


@dataclass(frozen=True, slots=True)
class UsageQuery:
    by: str = "consumer"
    window: Window = Window()
    # Tollway's addition: only this consumer's records (the dashboard's filter).
    consumer: str | None = None


def parse_time(text: str, now_s: float) -> int:
    """``24h``/``7d``/``30m``/``90s``/``2w`` ago, or an ISO-8601 date or date-time
    (UTC unless it names an offset), as epoch milliseconds, between the years 1 and 9999."""
    text = text.strip()
    m = _RELATIVE.fullmatch(text)
    if m is not None:
        ms = round((now_s - int(m.group(1)) * _UNIT_S[m.group(2)]) * 1000)
    else:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise UsageQueryError(f"{text[:40]!r} is neither a duration like 24h or 7d nor an ISO-8601 time") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ms = round(parsed.timestamp() * 1000)
    if not _EARLIEST_MS <= ms <= _LATEST_MS:
        raise UsageQueryError(f"{text[:40]!r} is out of range (years 1 to 9999)")
    return ms


def parse_window(since: str | None, until: str | None, now_s: float | None = None) -> Window:
    """The window between ``since`` and ``until`` (either may be absent or empty)."""
    now = time.time() if now_s is None else now_s
    try:
        since_ms = parse_time(since, now) if since else None
    except UsageQueryError as exc:
        raise UsageQueryError(f"since: {exc}") from None
    try:
        until_ms = parse_time(until, now) if until else None
    except UsageQueryError as exc:
        raise UsageQueryError(f"until: {exc}") from None
    return Window(since_ms, until_ms)


def query_from(params: Mapping[str, str], now_s: float | None = None) -> UsageQuery:
    """A query from ``by``, ``since``, ``until`` and ``consumer`` parameters."""
    by = params.get("by") or "consumer"
    if by not in GROUPINGS:
        raise UsageQueryError(f"by: must be one of {', '.join(GROUPINGS)} (got {by!r})")
    window = parse_window(params.get("since"), params.get("until"), now_s)
    return UsageQuery(by, window, consumer_param(params.get("consumer")))


def consumer_param(text: str | None) -> str | None:
    """A consumer name to filter by; control characters (which no consumer name has, and
    which PostgreSQL refuses in text) are refused."""
    if not text:
        return None
    if _CONTROL.search(text):
        raise UsageQueryError(f"consumer: must not contain control characters (got {text[:40]!r})")
    return text


def parse_limit(text: str | None, default: int = 100) -> int:
    """A record count between 1 and ``MAX_LIMIT``; anything else is refused, not clamped
    (a caller asking for 10,000 records should learn it gets at most 1,000)."""
    if not text:
        return default
    n = int(text) if _LIMIT.fullmatch(text) else 0
    if not 1 <= n <= MAX_LIMIT:
        raise UsageQueryError(f"limit: must be a whole number from 1 to {MAX_LIMIT} (got {text[:40]!r})")
    return n
