"""Budget periods are UTC calendar periods: days, weeks from Monday, months, and a total
that never resets."""

from __future__ import annotations

from datetime import UTC, datetime

from tollway.budgets.periods import span_of


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_a_day_runs_from_midnight_to_midnight_utc() -> None:
    span = span_of("day", at("2026-12-05T23:59:59"))
    assert (span.tag, span.resets_at) == ("d20261205", "2026-12-06T00:00:00Z")
    assert span.start_ms == at("2026-12-05T00:00:00") * 1000


def test_a_week_starts_on_monday() -> None:
    sunday = span_of("week", at("2026-12-06T12:00:00"))
    monday = span_of("week", at("2026-12-07T00:00:00"))
    assert (sunday.tag, sunday.resets_at) == ("w20261130", "2026-12-07T00:00:00Z")
    assert (monday.tag, monday.resets_at) == ("w20261207", "2026-12-14T00:00:00Z")


def test_a_month_rolls_over_the_year() -> None:
    december = span_of("month", at("2026-12-31T23:00:00"))
    assert (december.tag, december.resets_at) == ("m202612", "2027-01-01T00:00:00Z")
    february = span_of("month", at("2028-02-29T10:00:00"))
    assert (february.tag, february.resets_at) == ("m202802", "2028-03-01T00:00:00Z")


def test_a_total_never_resets() -> None:
    span = span_of("total", at("2026-12-05T00:00:00"))
    assert (span.tag, span.start_ms, span.end_ms, span.resets_at) == ("total", 0, None, None)
