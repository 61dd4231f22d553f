"""The usage query parameters (usage/query.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tollway.usage.query import UsageQuery, UsageQueryError, Window, parse_limit, parse_time, query_from

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", NOW - 86400),
        ("7d", NOW - 7 * 86400),
        ("30m", NOW - 1800),
        ("2w", NOW - 14 * 86400),
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC).timestamp()),
        ("2026-03-01T10:00:00Z", datetime(2026, 3, 1, 10, tzinfo=UTC).timestamp()),
        ("2026-03-01T12:00:00+02:00", datetime(2026, 3, 1, 10, tzinfo=UTC).timestamp()),
        ("2026-03-01T10:00:00", datetime(2026, 3, 1, 10, tzinfo=UTC).timestamp()),
    ],
)
def test_times_are_durations_ago_or_iso_8601(text: str, expected: float) -> None:
    assert parse_time(text, NOW) == round(expected * 1000)


def test_bad_parameters_name_themselves() -> None:
    with pytest.raises(UsageQueryError, match="since"):
        query_from({"since": "yesterday"}, NOW)
    with pytest.raises(UsageQueryError, match="until"):
        query_from({"until": "3 days"}, NOW)
    with pytest.raises(UsageQueryError, match="by"):
        query_from({"by": "color"}, NOW)
    with pytest.raises(UsageQueryError, match="limit"):
        parse_limit("many")
    assert parse_limit("1000") == 1000 and parse_limit("1") == 1 and parse_limit(None) == 100
    q = query_from({"by": "model", "since": "24h", "until": "", "consumer": "alice"}, NOW)
    assert q == UsageQuery("model", Window(round((NOW - 86400) * 1000), None), "alice")
    assert query_from({}, NOW) == UsageQuery()


@pytest.mark.parametrize("text", ["0", "-1", "1001", "5000", "1e3", "1_0", " 5", "\u0663", "9" * 5000])
def test_a_limit_that_is_not_a_small_positive_number_is_refused(text: str) -> None:
    with pytest.raises(UsageQueryError, match="limit: must be a whole number from 1 to 1000"):
        parse_limit(text)


@pytest.mark.parametrize(
    "text",
    ["99999999999d", "999999999999w", "9" * 5000 + "d", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"],
)
def test_a_time_out_of_range_is_refused_not_overflowed(text: str) -> None:
    with pytest.raises(UsageQueryError, match="since"):
        query_from({"since": text}, NOW)


def test_the_earliest_and_latest_times_a_date_can_hold_are_accepted() -> None:
    q = query_from({"since": "0001-01-01", "until": "9999-12-31T23:59:59Z"}, NOW)
    assert q.window == Window(-62135596800000, 253402300799000)
