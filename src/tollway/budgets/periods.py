"""A budget's calendar periods, in UTC: the period a moment falls in, when it began and
when it resets. Weeks start on Monday; ``total`` never resets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from tollway.consumers.consumer import Period


class Span(NamedTuple):
    """One period: ``tag`` names it in state keys (``d20261205``, ``w20261130``,
    ``m202612``, ``total``); ``start_ms`` and ``end_ms`` bound it (``end_ms`` None:
    never ends)."""

    tag: str
    start_ms: int
    end_ms: int | None

    @property
    def resets_at(self) -> str | None:
        if self.end_ms is None:
            return None
        return datetime.fromtimestamp(self.end_ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def span_of(period: Period, now: float) -> Span:
    """The period of kind ``period`` that ``now`` (seconds since the epoch) falls in."""
    if period == "total":
        return Span("total", 0, None)
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start, end = day, day + timedelta(days=1)
        return Span(f"d{start:%Y%m%d}", _ms(start), _ms(end))
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return Span(f"w{start:%Y%m%d}", _ms(start), _ms(start + timedelta(days=7)))
    start = day.replace(day=1)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return Span(f"m{start:%Y%m}", _ms(start), _ms(end))


__all__ = ["Span", "span_of"]
