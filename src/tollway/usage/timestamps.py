"""UTC timestamps as the usage record keeps them: milliseconds since the epoch, shown as
ISO-8601 (``2026-11-26T12:00:01.234Z``), with the day and hour a summary groups by.

Every call takes one, on the request's own task; the per-second and per-hour strings are
formatted once and reused (a few times cheaper than ``datetime.isoformat``, and every
record of that hour shares its ``day``/``hour`` strings instead of holding copies).
"""

from __future__ import annotations

import time
from functools import lru_cache


@lru_cache(maxsize=8)
def _second(epoch_s: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s))


@lru_cache(maxsize=8)
def _day_hour(epoch_hour: int) -> tuple[str, str]:
    stamp = time.strftime("%Y-%m-%dT%H", time.gmtime(epoch_hour * 3600))
    return stamp[:10], stamp + ":00:00Z"


def to_ms(ts: float) -> int:
    """``ts`` (seconds since the epoch, ``time.time()``) in whole milliseconds, truncated
    as datetime does it: rounded to the microsecond first, then cut to the millisecond."""
    return round(ts * 1_000_000) // 1000


_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))


def iso_of_ms(ts_ms: int) -> str:
    """``ts_ms`` as ISO-8601 UTC with milliseconds and a ``Z``."""
    return _second(ts_ms // 1000) + _MILLIS[ts_ms % 1000]


def day_hour(ts_ms: int) -> tuple[str, str]:
    """The UTC day (``2026-11-26``) and hour (``2026-11-26T12:00:00Z``) of ``ts_ms``."""
    return _day_hour(ts_ms // 3_600_000)
