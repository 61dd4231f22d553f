"""Consumers: the members and apps an organisation gives keys to, in the one shape every
plugin and listing sees, whether they come from the config file or the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypedDict

from tollway.patterns import matches_any

Source = Literal["config", "runtime"]
Period = Literal["day", "week", "month", "total"]
PERIODS: tuple[Period, ...] = ("day", "week", "month", "total")
# The largest budget a runtime consumer or group takes: a billion dollars. Spend is
# counted in nano-dollars, exact only while it fits a double's 53 bits (a Redis Lua
# number); far larger amounts would break the counters.
MAX_BUDGET_USD = 1e9
# The most calls in flight a consumer or a group may be given (the admin API, the CLI).
MAX_PARALLEL = 1_000_000


@dataclass(frozen=True, slots=True)
class Budget:
    """A spending cap in US dollars over a UTC calendar period (SPEC §10)."""

    usd: float
    period: Period


@dataclass(frozen=True, slots=True)
class Consumer:
    """A consumer as every plugin sees it. ``expires_at``: seconds since the epoch after
    which its key is refused (None: never)."""

    name: str
    allow_models: tuple[str, ...] | None = None
    groups: tuple[str, ...] = ()
    source: Source = "config"
    # MCP tool patterns per server name (SPEC §12); a server without an entry: all its tools.
    allow_tools: tuple[tuple[str, tuple[str, ...]], ...] = ()
    expires_at: float | None = None
    budget: Budget | None = None
    max_parallel: int | None = None

    def may_use(self, model: str) -> bool:
        """``allow_models`` unset means every model; set, the model must match one pattern."""
        return self.allow_models is None or matches_any(self.allow_models, model)

    def tool_patterns(self, server: str) -> tuple[str, ...] | None:
        """The patterns ``server``'s tools must match for this consumer; None: every tool."""
        for name, patterns in self.allow_tools:
            if name == server:
                return patterns
        return None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


class BudgetInfo(TypedDict):
    usd: float
    period: Period


class ConsumerInfo(TypedDict):
    """A consumer as ``GET /api/consumers`` and ``tollway consumers list`` show it: never the key."""

    name: str
    allow_models: list[str] | None
    groups: list[str]
    source: Source
    key_hint: str
    created_at: str | None
    expires_at: str | None


class ConsumerListed(ConsumerInfo):
    """A consumer as ``GET /api/consumers`` lists it: what a table of consumers shows
    (``spend``, when asked for, is filled by the caller)."""

    budget: BudgetInfo | None
    max_parallel: int | None
    # MCP tool patterns per server (SPEC §12); None: every tool of every server.
    allow_tools: dict[str, list[str]] | None


class ConsumerDetail(ConsumerListed):
    """One consumer as ``GET /api/consumers/NAME`` shows it; ``spend`` is filled by the caller."""

    metadata: dict[str, object] | None


def parse_instant(text: str) -> float:
    """An ISO-8601 date or date-time (UTC unless it names an offset) as seconds since the
    epoch; ``ValueError`` if it is not one, or if it falls outside years 1 to 9999 in
    UTC (``9999-12-31T23:00-05:00``): such an instant could be stored, but never shown
    again (``iso_instant``). RFC 3339 allows a lower-case ``t`` and ``z``."""
    when = datetime.fromisoformat(text.upper())
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        when = when.astimezone(UTC)
    except OverflowError:
        raise ValueError("the instant falls outside years 1 to 9999 in UTC") from None
    return when.timestamp()


def iso_instant(ts: float) -> str:
    """Seconds since the epoch as ISO-8601 UTC to the second (``2026-01-31T23:59:59Z``).
    An instant past either end of year 1 to 9999 (stored before ``parse_instant`` refused
    them) is shown as that end: a listing must not fail on one row."""
    try:
        when = datetime.fromtimestamp(ts, UTC)
    except (OverflowError, ValueError, OSError):
        when = datetime.max.replace(tzinfo=UTC) if ts > 0 else datetime.min.replace(tzinfo=UTC)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")
