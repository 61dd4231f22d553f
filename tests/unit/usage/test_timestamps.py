"""The usage record's timestamps: milliseconds since the epoch, ISO-8601 UTC to the
millisecond, and the day and hour summaries group by."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from tollway.usage.timestamps import day_hour, iso_of_ms, to_ms


def test_shape() -> None:
    assert iso_of_ms(0) == "1970-01-01T00:00:00.000Z"
    assert to_ms(1_795_688_683.25) == 1_795_688_683_250
    assert iso_of_ms(1_795_688_683_250) == "2026-11-26T10:24:43.250Z"
    assert day_hour(1_795_688_683_250) == ("2026-11-26", "2026-11-26T10:00:00Z")


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_agrees_with_datetime_to_the_millisecond(ts: float) -> None:
    ms = to_ms(ts)
    theirs = datetime.fromtimestamp(ts, UTC)
    # Truncated as datetime truncates: to the microsecond, then cut to the millisecond.
    assert ms == round(theirs.replace(microsecond=theirs.microsecond // 1000 * 1000).timestamp() * 1000)
    assert iso_of_ms(ms) == theirs.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert day_hour(ms) == (theirs.strftime("%Y-%m-%d"), theirs.strftime("%Y-%m-%dT%H:00:00Z"))
