"""Shared counters and quotas: where limit plugins keep what must outlive one request.

    StateStore                 the interface plugins see (``services.state``)
    ├── MemoryStateStore       this process only (``storage.state: memory``)
    └── RedisStateStore        shared by every worker and replica (``redis://…``)

Every admission decision is one atomic operation: the memory store does it without an
``await`` in between, the Redis store in one Lua script (one round trip). Two shapes
of state exist:

* **Fixed windows** (``take`` / ``adjust``): a counter per key and window, windows
  aligned to multiples of their length since the Unix epoch (UTC). ``take`` admits an
  amount only if it fits under the limit, and counts it only then; ``adjust`` later
  corrects what was taken (a token reservation settled to the real usage).
* **Quotas** (``quota_*``): a remaining balance per key that refreshes overwrite and
  deltas move. A reservation remembers the quota's generation, so settling a call after
  a refresh charges the new balance only what the call really spent.

Where a database keeps the truth of quotas (``tollway.quotas``), each balance also
carries the *ledger version* it reflects: how many management operations (refreshes
and deltas) the database had recorded for it. ``quota_apply`` applies operation N only
on top of N - 1, so the store applies them in the database's order whatever order
they arrive in; ``quota_restore`` puts a balance rebuilt from the database back into a
store that lost it; ``quota_settle`` answers the version a call's spend was charged
in, so the database can tell spends after a refresh from spends it overwrote. A
balance set without a database (``quota_set``, ``quota_add``) is ``UNTRACKED``.

**Spend** (``spend_*``, SPEC §10 budgets): per subject (a consumer or a group) a spend
counter for the budget's period, what calls in flight hold, and how many calls run
(``max_parallel``). ``spend_admit`` checks every subject of a call and takes for all of
them or none, in one step; ``spend_release`` gives the hold back and adds what the call
cost. A store shared by several processes counts each process's calls in flight under
its lease (``SpendAdmission.lease``), so a process that dies gives them back by itself.
A spend counter the store does not have (never built, or a Redis flushed) makes
``spend_admit`` answer ``MISSING``: the caller rebuilds it from the usage records
(``spend_restore``, written only where still missing) and asks again.
Amounts are integers (nano-dollars), so sums are exact.

A store that cannot answer raises ``StateUnavailable``; each plugin decides what that
means for the request (its ``failure_mode``). The store itself logs the failure at most
once per interval and counts it in ``errors``, so an outage costs one log line, not one
per request.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple


class StateUnavailable(Exception):
    """The state store could not answer in time (unreachable, timed out, or failed)."""


class WindowTake(NamedTuple):
    """The answer to one ``take``.

    ``used`` is the window's counter after the decision (what was already there when
    refused); ``reset_ms`` the time left until the window ends; ``window`` the window's
    index (its start divided by its length), to ``adjust`` the same window later.
    """

    admitted: bool
    used: int
    reset_ms: int
    window: int


class QuotaTake(NamedTuple):
    """The answer to one ``quota_take``: ``remaining`` is the balance after it (``None``
    when the key has no quota at all), ``reserved`` what was taken, ``generation`` the
    quota's generation to settle against."""

    admitted: bool
    remaining: int | None
    reserved: int
    generation: int


# The ledger version of a balance set without a database (``quota_set``, ``quota_add``).
UNTRACKED = -1


class QuotaState(NamedTuple):
    """A quota as the store holds it: ``value`` remaining, at ledger ``version``
    (``UNTRACKED`` when set without a database)."""

    value: int
    version: int


class Applied(IntEnum):
    """The answer to one ``quota_apply``."""

    APPLIED = 0  # the store held version N - 1 and now holds N
    ALREADY = 1  # the store holds N or later: its balance includes the operation already
    BEHIND = 2  # the store holds an earlier version than N - 1 (or is untracked): it missed an operation
    MISSING = 3  # the store has no balance for the key


def held_key(key: str) -> str:
    """Where what calls in flight hold against the spend counter ``key`` is kept."""
    return key + ":holds"


@dataclass(frozen=True, slots=True)
class Allowance:
    """One subject's part in a call's admission: its spend counter (``key``, with
    ``held_key`` for what calls in flight hold) and ``budget`` (-1:
    none), its counter of calls running (``running_key``) and ``max_parallel`` (-1: none).

    Made once per consumer and period (``tollway.budgets``) and read on every budgeted
    call: slots (a NamedTuple's fields are descriptors Python 3.11 reads the slow way),
    and the held key made once, its hash kept, instead of joined on every call."""

    key: str
    budget: int
    running_key: str
    max_parallel: int
    held_key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "held_key", held_key(self.key))


class Admission(IntEnum):
    ADMITTED = 0
    OVER_BUDGET = 1  # spend + held + this call's hold would pass the subject's budget
    TOO_MANY = 2  # the subject has max_parallel calls running
    MISSING = 3  # the store has no spend counter for the subject: rebuild it, then ask again


class SpendAdmission(NamedTuple):
    """The answer to one ``spend_admit``: for a refusal or a missing counter, which
    subject (its index) and, over budget, its spend and holds then."""

    outcome: Admission
    subject: int = 0
    spent: int = 0
    held: int = 0
    # What an admitted call is counted under (a process's lease in a shared store), for
    # its release; "" where the store has none.
    lease: str = ""


# The one admitted answer (an immutable tuple), shared: building a NamedTuple with
# defaults costs a Python-level call, on a budgeted call's hot path.
ADMITTED = SpendAdmission(Admission.ADMITTED)


class StateStore(ABC):
    """Counters and quotas keyed by plugin-chosen names (the store adds its own prefix).

    ``errors`` counts failed operations since start (for metrics).
    """

    errors: int = 0

    async def ping(self) -> None:
        """Raises ``StateUnavailable`` when the store cannot be used now (memory: never)."""
        return None

    @abstractmethod
    async def take(self, key: str, window_s: int, limit: int, amount: int) -> WindowTake:
        """Add ``amount`` to the current window of ``key`` if the result stays within
        ``limit``; otherwise change nothing and refuse."""

    @abstractmethod
    async def adjust(self, key: str, window: int, delta: int) -> None:
        """Add ``delta`` (may be negative) to window ``window`` of ``key``, if that window
        still exists; a window that has passed is left alone."""

    @abstractmethod
    async def quota_get(self, key: str) -> int | None:
        """The remaining quota, or ``None`` when none was ever set."""

    @abstractmethod
    async def quota_set(self, key: str, value: int) -> None:
        """Overwrite the quota (a refresh); starts a new generation."""

    @abstractmethod
    async def quota_add(self, key: str, delta: int) -> int:
        """Move the quota by ``delta`` (a missing quota counts as 0); the new value."""

    @abstractmethod
    async def quota_take(self, key: str, amount: int) -> QuotaTake:
        """Admit when the quota is above zero, reserving ``min(amount, remaining)``."""

    @abstractmethod
    async def quota_settle(self, key: str, generation: int, reserved: int, spent: int) -> int | None:
        """Replace a reservation by what the call spent: give back ``reserved - spent``
        in the same generation; after a refresh, charge the new balance ``spent``.

        Returns the ledger version the balance was at (``UNTRACKED`` if none), or ``None``
        when the key has no quota (nothing was charged)."""

    @abstractmethod
    async def quota_read(self, key: str) -> QuotaState | None:
        """The quota and its ledger version, or ``None`` when the key has none."""

    @abstractmethod
    async def quota_apply(self, key: str, refresh: bool, amount: int, version: int) -> Applied:
        """Apply management operation number ``version`` of the ledger, only on top of
        ``version - 1``: a refresh sets the balance to ``amount`` (a new generation), a
        delta adds ``amount``. ``amount`` 0 with ``refresh`` false only moves the version
        (a balance the ledger adopts as version 0)."""

    async def quota_left_by_higress(self, key: str) -> int | None:
        """The balance Higress's ai-quota keeps under ``key`` itself (its
        ``redis_key_prefix`` and the consumer's name, no prefix of this store's): a plain
        integer, which a gateway taking over from Higress on the same Redis adopts once.
        None where there is none, or where the store is this process's memory."""
        return None

    @abstractmethod
    async def quota_restore(self, key: str, value: int, version: int, generation: int, *, replace: bool) -> bool:
        """Put back a balance rebuilt from the ledger: ``value`` at ``version``, under a
        ``generation`` no reservation holds (so calls reserved before it are charged what
        they spent). Only where the key has no quota, or, with ``replace``, where its
        version is older than ``version``. Returns whether it wrote."""

    @abstractmethod
    async def spend_admit(self, subjects: Sequence[Allowance], amount: int, hold_ms: int) -> SpendAdmission:
        """Admit a call holding ``amount`` against every subject's budget and counting it
        as running for every subject's ``max_parallel``, or change nothing. A call holding
        nothing (what no provider bills) passes a budget however spent. A subject's
        holds and running counts are forgotten ``hold_ms`` after its last admission (a
        process's that died are given back sooner, with its lease, where there is one)."""

    @abstractmethod
    async def spend_release(
        self, subjects: Sequence[Allowance], amount: int, spent: int, lease: str = ""
    ) -> list[int | None]:
        """A call admitted with ``amount`` (under ``lease``, its admission's) ended having
        cost ``spent``: give the hold and the running slot back and add ``spent`` to each
        spend counter that exists. Answers each subject's spend after it (None: no budget,
        or no counter)."""

    @abstractmethod
    async def spend_restore(self, key: str, value: int, ttl_ms: int) -> bool:
        """Set a spend counter rebuilt from the usage records, only where it is missing;
        it expires after ``ttl_ms`` (0: never). Returns whether it wrote."""

    @abstractmethod
    async def spend_read(self, key: str) -> tuple[int | None, int]:
        """A spend counter (None: missing) and what calls in flight hold on it."""

    @abstractmethod
    async def claim(self, key: str, ttl_ms: int) -> bool:
        """True for exactly one caller, across every replica, until ``key`` expires."""

    @abstractmethod
    async def bind(self, key: str, value: str, ttl_ms: int) -> str:
        """Bind ``key`` to ``value`` for ``ttl_ms`` unless it is bound already, across
        every replica; the value ``key`` is bound to either way (``value``, or the one
        bound before)."""

    @abstractmethod
    async def spend_forget(self, key: str) -> None:
        """Drop a spend counter (its held and running counters stay): the next call or
        read rebuilds it from the usage records (``spend_restore``)."""

    @abstractmethod
    async def bound(self, key: str) -> str | None:
        """The value ``key`` is bound to (``bind``), or None when it is not."""

    async def aclose(self) -> None:
        """Release connections; the store is not used afterwards."""
        return


def open_state_store(url: str) -> StateStore:
    """The store ``storage.state`` names: ``memory`` or a ``redis://`` / ``rediss://`` URL.

    Raises ``ValueError`` for a URL the Redis client cannot use.
    """
    if url == "memory":
        from tollway.state.memory import MemoryStateStore

        return MemoryStateStore()
    from tollway.state.redis import RedisStateStore

    return RedisStateStore.from_url(url)


__all__ = [
    "ADMITTED",
    "UNTRACKED",
    "Admission",
    "Allowance",
    "Applied",
    "QuotaState",
    "QuotaTake",
    "SpendAdmission",
    "StateStore",
    "StateUnavailable",
    "WindowTake",
    "held_key",
    "open_state_store",
]
