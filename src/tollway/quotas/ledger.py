"""``QuotaLedger``: ai-quota balances kept in the database as well as in the state store.

The state store decides every call, as without a ledger; the ledger adds:

- **Management first to the database.** A refresh or delta is recorded in the database
  (its new *version*), then applied to the store, which takes operation N only on top of
  N - 1 (``StateStore.quota_apply``): both apply them in the same order, whichever
  replica sends them. The store is checked first, so an unreachable store changes
  nothing (503, and the database untouched); an unreachable database changes nothing
  either (503). A store that missed an operation (its write failed after the database
  took it) is rebuilt from the database at the next one.
- **Spends in batches.** Each settled call's spend is queued with the version the store
  charged it at (``spends.py``) and written every ``interval_s``, off the request path:
  a crash loses the spends of at most the last ``interval_s`` plus one write (and,
  while the database is down, all those waiting for it).
- **Rebuilds.** Where the store has no balance for a key (a Redis flushed or restarted
  empty), ``restore`` rebuilds it: the database's balance (last refresh + deltas since −
  spends written since) minus this process's spends not written yet, at the database's
  version, under a new generation, so calls that reserved before the loss are charged
  what they spent. One rebuild per key at a time in a process (callers share it); in the
  store it is written only where the key is still missing, so replicas racing to
  rebuild it write it once. A key the database has no row for gets a balance of 0 at
  version 0: a consumer that never had a quota still has none, and its next calls do
  not ask the database again.
- **Adoption.** A balance set before the ledger existed (``UNTRACKED`` in the store) is
  copied into the database as version 0 by the next management operation on it, or
  in the background after a call spends from it.

What a rebuild cannot see: spends other replicas have queued and not yet written (at
most their last ``interval_s``) are in the database later but not in the rebuilt balance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator

from tollway.background import BackgroundTask
from tollway.quotas import LedgerUnavailable
from tollway.quotas.balances import Balance, BalanceTable
from tollway.quotas.spends import SpendQueue
from tollway.state import UNTRACKED, Applied, StateStore, StateUnavailable
from tollway.storage import Database, StorageError

log = logging.getLogger("tollway.quotas")

# Generations are compared as Lua numbers (doubles) in Redis: exact below 2^53.
_GENERATION_BITS = 52


class QuotaLedger:
    """One per process, on the runtime's database and state store; ``start`` inside the
    running loop (after the database connects), ``stop`` before it closes.

    ``timeout_s`` bounds the database read of a rebuild, which a call waits for (a read
    cut short changes nothing). A management operation's write has no deadline of its
    own, only the database's (SQLite's wait for a lock, PostgreSQL's command timeout): a
    write cut short could still land (SQLite's thread goes on with it), and its 503 would
    then be a lie. ``stop_timeout_s`` bounds the last write at a stop.
    """

    def __init__(
        self,
        database: Database,
        state: StateStore,
        *,
        interval_s: float = 0.5,
        timeout_s: float = 2.0,
        warn_interval_s: float = 10.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self.table = BalanceTable(database)
        self.state = state
        self.spends = SpendQueue(self.table, warn_interval_s=warn_interval_s)
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.stop_timeout_s = stop_timeout_s
        # Balances written back into the store from the database's rows (for tests).
        self.rebuilt = 0
        self._restoring: dict[tuple[str, bool], asyncio.Task[None]] = {}
        self._untracked: set[str] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task = BackgroundTask("quota-ledger", self._run)

    # --- lifetime ---------------------------------------------------------------------

    async def start(self) -> None:
        """Create the table if missing (``StorageError`` if the database cannot), then
        start writing spends."""
        await self.table.migrate()
        self._task.start()

    async def stop(self) -> None:
        """Write the spends still queued, within ``stop_timeout_s``; those the database
        does not take by then are lost (logged)."""
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(self._finish(), self.stop_timeout_s)
        except TimeoutError:
            pass
        except Exception:  # a bug here must not stop the shutdown
            log.exception("quota ledger: writing spends at the stop failed")
        for task in list(self._restoring.values()):
            task.cancel()
        if self.spends.queued:
            log.warning(
                "quota ledger: %d spent tokens not written at the stop, lost: balances rebuilt from "
                "the database will not count them",
                self.spends.queued,
            )

    async def _finish(self) -> None:
        await self._task.join()
        await self.spends.write()

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            if self._stopping:
                return  # the stop writes the last round, within its own deadline
            try:
                await self.write()
            except Exception:  # a bug must not end the writing of spends for good
                log.exception("quota ledger: a round of writing spends failed")

    async def write(self) -> bool:
        """One round now (the task runs one every ``interval_s``): write the queued
        spends, then adopt the untracked balances calls spent from. False when the
        database did not take the spends (they stay queued)."""
        written = await self.spends.write()
        if self._untracked:
            await self._adopt_untracked()
        return written

    # --- calls ------------------------------------------------------------------------

    async def settle(self, key: str, generation: int, reserved: int, spent: int) -> None:
        """Settle a call in the store (``StateStore.quota_settle``) and queue its spend.

        A balance lost since the call reserved is rebuilt first and charged ``spent``.
        Raises ``StateUnavailable`` or ``LedgerUnavailable``; the spend is then not
        queued."""
        version = await self.state.quota_settle(key, generation, reserved, spent)
        if version is None:
            await self.restore(key)
            version = await self.state.quota_settle(key, generation, reserved, spent)
            if version is None:
                return
        if version == UNTRACKED:
            self._untracked.add(key)
        elif spent:
            self.spends.add(key, version, spent)

    async def restore(self, key: str, *, replace: bool = False) -> None:
        """Rebuild ``key`` in the store from the database where the store has no balance
        for it (or, with ``replace``, an older version than the database's). Concurrent
        callers for one key share one rebuild. Raises ``StateUnavailable`` or
        ``LedgerUnavailable``."""
        flight = (key, replace)
        task = self._restoring.get(flight)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._restore(key, replace), name="quota-restore")
            self._restoring[flight] = task
            task.add_done_callback(lambda t: self._restored(flight, t))
        # A caller that gives up (its client left) must not cancel the others' rebuild.
        await asyncio.shield(task)

    def _restored(self, flight: tuple[str, bool], task: asyncio.Task[None]) -> None:
        self._restoring.pop(flight, None)
        if not task.cancelled():
            task.exception()  # seen, even if every caller had given up

    async def _restore(self, key: str, replace: bool) -> None:
        if not replace and await self.state.quota_read(key) is not None:
            return  # rebuilt meanwhile (by this process's last rebuild, or a replica)
        # Under ``writing`` no batch is on its way: a spend is in the database's balance
        # or in the queue, never in both or neither.
        async with self._database(self.timeout_s), self.spends.writing:
            row = await self.table.read(key)
            if row is None:
                row = await self._from_higress(key)
            queued = self.spends.queued_for(key, row.refresh_version) if row is not None else 0
        value, version = (row.value - queued, row.version) if row is not None else (0, 0)
        generation = secrets.randbits(_GENERATION_BITS)
        wrote = await self.state.quota_restore(key, value, version, generation, replace=replace)
        if wrote and row is not None:
            self.rebuilt += 1
            log.info("quota ledger: %s rebuilt from the database: %d (version %d)", key, value, version)

    async def _from_higress(self, key: str) -> Balance | None:
        """A quota neither the store nor the database has, that Higress's ai-quota left in
        the same Redis (``<redis_key_prefix><consumer>``, a plain integer): adopted into
        the database (version 0), so a gateway taking over from Higress keeps every
        consumer's balance instead of refusing them all. Read once: the balance is then
        this gateway's, and Higress's key is left as it was."""
        left = await self.state.quota_left_by_higress(key)
        if left is None:
            return None
        if await self.table.adopt(key, left):
            log.info("quota ledger: %s taken over from Higress's key: %d", key, left)
        return await self.table.read(key)

    # --- management -------------------------------------------------------------------

    async def read(self, key: str) -> int:
        """The remaining quota (0 when none), rebuilt first if the store lost it."""
        state = await self.state.quota_read(key)
        if state is None:
            await self.restore(key)
            state = await self.state.quota_read(key)
        return state.value if state is not None else 0

    async def refresh(self, key: str, value: int) -> None:
        """Set the quota to ``value``, in the database first."""
        await self._manage(key, True, value)

    async def add(self, key: str, delta: int) -> None:
        """Move the quota by ``delta``, in the database first."""
        await self._manage(key, False, delta)

    async def _manage(self, key: str, refresh: bool, amount: int) -> None:
        await self._track(key)
        async with self._database(None):
            version = await (self.table.refresh(key, amount) if refresh else self.table.add(key, amount))
        applied = await self.state.quota_apply(key, refresh, amount, version)
        if applied is Applied.MISSING:  # lost again since _track
            await self.restore(key)
            applied = await self.state.quota_apply(key, refresh, amount, version)
        if applied is Applied.BEHIND:
            # The store missed an operation: one whose store write failed after the
            # database took it, or one still on its way from another replica. The
            # database has them all.
            await self.restore(key, replace=True)

    async def _track(self, key: str) -> None:
        """Make sure the store holds ``key`` at a ledger version, so the next operation
        can be applied on top of it."""
        state = await self.state.quota_read(key)
        if state is None:
            await self.restore(key)
        elif state.version == UNTRACKED:
            await self._adopt(key, state.value)

    async def _adopt(self, key: str, value: int) -> None:
        async with self._database(None):
            adopted = await self.table.adopt(key, value)
        if adopted:
            if await self.state.quota_apply(key, False, 0, 0) is Applied.MISSING:
                await self.restore(key)
            log.info("quota ledger: %s adopted from the state store: %d", key, value)
        else:
            await self.restore(key, replace=True)

    async def _adopt_untracked(self) -> None:
        keys, self._untracked = self._untracked, set()
        for key in sorted(keys):
            try:
                state = await self.state.quota_read(key)
                if state is not None and state.version == UNTRACKED:
                    await self._adopt(key, state.value)
            except (StateUnavailable, LedgerUnavailable):
                pass  # the key's next spend asks again; the outage is logged where it arose

    @contextlib.asynccontextmanager
    async def _database(self, timeout_s: float | None) -> AsyncIterator[None]:
        """Database steps a request waits for: within ``timeout_s`` if given (waiting for
        a batch of spends on its way included), their failures as ``LedgerUnavailable``."""
        try:
            async with asyncio.timeout(timeout_s):
                yield
        except StorageError as exc:
            raise LedgerUnavailable(str(exc)) from None
        except TimeoutError:
            raise LedgerUnavailable(f"the database did not answer within {timeout_s} s") from None


__all__ = ["QuotaLedger"]
