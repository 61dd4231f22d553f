"""The quota ledger: the database keeps the truth of every ai-quota balance, so a state
store that lost it (a Redis flushed or restarted empty, a restarted process's memory)
is rebuilt from it.

    balances.py    the ``quota_balances`` table: one row per quota, and its SQL
    spends.py      spends queued per quota and written in batches, off the request path
    ledger.py      ``QuotaLedger``: management operations written to the database first,
                   spends handed to the queue, balances rebuilt where the store has none

    LedgerUnavailable     the database could not take or answer a quota operation in time

The state store still decides every call (one atomic step, as before); the database is
written only by management operations (refresh, delta) and, a batch at a time, by the
spends of settled calls. It is read only to rebuild a balance the store does not have.
"""

from __future__ import annotations


class LedgerUnavailable(Exception):
    """The database could not take or answer a quota operation in time (unreachable,
    failed, or slower than the ledger's deadline)."""


__all__ = ["LedgerUnavailable"]
