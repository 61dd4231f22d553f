"""Runtime consumers served from memory: authenticating a key, known or not, is a hash
and a dict lookup, never a query.

Every process keeps all active runtime consumers of the store in a dict keyed by their
key's hash. To see what other processes changed, it reads the store's change counter
once per refresh interval and reloads the whole set when it moved: a key added or
revoked anywhere works or stops everywhere within about one interval; here, at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from tollway.background import BackgroundTask, every
from tollway.consumers.consumer import Consumer, ConsumerInfo
from tollway.consumers.keys import KEY_PREFIX, hash_key
from tollway.consumers.store import ConsumerStore
from tollway.storage import StorageError

log = logging.getLogger("tollway")

REFRESH_INTERVAL_S = 1.0


class ConsumerDirectory:
    """All active runtime consumers of one store, in memory, kept fresh.

    ``start()`` creates the tables if needed, loads the consumers and starts the refresh
    task; ``stop()`` ends it (the database is the caller's to close).
    """

    def __init__(self, store: ConsumerStore, *, refresh_interval_s: float = REFRESH_INTERVAL_S) -> None:
        self.store = store
        self._by_hash: dict[str, Consumer] = {}
        self._hash_of: dict[str, str] = {}  # name → key hash, to drop a revoked key at once
        self._version: int | None = None
        # Serialises reloads with local changes: a reload that read the table just before
        # a local revoke must not put the revoked key back.
        self._lock = asyncio.Lock()
        self._failing = False
        self._refresher = BackgroundTask("consumer-directory-refresh", every(refresh_interval_s, self._tick))

    async def start(self) -> None:
        await self.store.migrate()
        await self.refresh()
        self._refresher.start()

    async def stop(self) -> None:
        await self._refresher.stop()

    def lookup(self, key: str) -> Consumer | None:
        """The active runtime consumer with this key, or None; memory only, no query."""
        if not key.startswith(KEY_PREFIX):
            return None
        return self._by_hash.get(hash_key(key))

    async def refresh(self) -> bool:
        """Reload the consumers if the change counter moved since the last load; say whether."""
        async with self._lock:
            version = await self.store.version()
            if version == self._version:
                return False
            # The version is read before the rows: a change committed in between is
            # loaded now and loaded again next time, never missed.
            by_hash: dict[str, Consumer] = {}
            hash_of: dict[str, str] = {}
            for key_hash, consumer in await self.store.active():
                by_hash[key_hash] = consumer
                hash_of[consumer.name] = key_hash
            self._by_hash, self._hash_of = by_hash, hash_of
            self._version = version
            return True

    async def _tick(self) -> None:
        try:
            await self.refresh()
        except Exception as exc:
            # Keep serving the last known consumers and keep trying: this task dying
            # would freeze every revocation made elsewhere. Say so once per outage,
            # not once a second; a database outage is expected, anything else a bug.
            if not self._failing:
                if isinstance(exc, StorageError):
                    log.warning("runtime consumers: refresh failed, keeping the last known set: %s", exc)
                else:
                    log.exception("runtime consumers: refresh failed, keeping the last known set")
            self._failing = True
            return
        if self._failing:
            log.warning("runtime consumers: refresh works again")
        self._failing = False

    async def add(
        self, name: str, allow_models: Sequence[str] | None = None, groups: Sequence[str] = ()
    ) -> tuple[Consumer, str]:
        """``ConsumerStore.add``, and the key works here at once."""
        async with self._lock:
            consumer, key, key_hash = await self.store.add(name, allow_models, groups)
            self._forget(name)
            self._by_hash[key_hash] = consumer
            self._hash_of[name] = key_hash
        return consumer, key

    async def revoke(self, name: str) -> None:
        """``ConsumerStore.revoke``, and the key stops working here at once."""
        async with self._lock:
            await self.store.revoke(name)
            self._forget(name)

    async def list(self) -> list[ConsumerInfo]:
        return await self.store.list()

    def _forget(self, name: str) -> None:
        old = self._hash_of.pop(name, None)
        if old is not None:
            self._by_hash.pop(old, None)
