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
    assert parse_limit("5000") == 1000 and parse_limit("0") == 1 and parse_limit(None) == 100
    q = query_from({"by": "model", "since": "24h", "until": "", "consumer": "alice"}, NOW)
    assert q == UsageQuery("model", Window(round((NOW - 86400) * 1000), None), "alice")
    assert query_from({}, NOW) == UsageQuery()
