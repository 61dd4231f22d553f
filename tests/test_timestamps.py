"""The usage record's timestamps: ISO-8601 UTC to the millisecond, and back."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from tollway.timestamps import epoch_ms, iso_ms


def test_shape() -> None:
    assert iso_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_ms(1_795_688_683.25) == "2026-11-26T10:24:43.250Z"
    assert epoch_ms("2026-11-26T10:24:43.250Z") == 1_795_688_683_250


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_agrees_with_datetime_to_the_millisecond(ts: float) -> None:
    mine = datetime.fromisoformat(iso_ms(ts))
    theirs = datetime.fromtimestamp(ts, UTC)
    assert abs((mine - theirs).total_seconds()) < 0.001
    assert epoch_ms(iso_ms(ts)) == round(mine.timestamp() * 1000)
