"""Runtime consumers served from memory: authenticating a key, known or not, is a hash
and a dict lookup, never a query.

Every process keeps all active runtime consumers of the store in a dict keyed by their
key's hash. To see what other processes changed, it reads the store's change counter
once per refresh interval and reloads the whole set when it moved: a key added, edited,
rotated or revoked anywhere works or stops everywhere within about one interval; here, at
once. A rotated-out key is kept apart with the moment it stops, and looked at only when
a key is not a current one, so the common lookup stays one dict probe.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from tollway import patterns
from tollway.background import BackgroundTask, every
from tollway.consumers.consumer import Budget, Consumer, ConsumerDetail, ConsumerInfo, ConsumerListed
from tollway.consumers.groups import Group, GroupDirectory
from tollway.consumers.keys import KEY_PREFIX, hash_key
from tollway.consumers.store import ConsumerStore
from tollway.storage import StorageError

log = logging.getLogger("tollway")
# An alias because ConsumerDirectory.list (the admin API's verb) hides the builtin in its class.
_Listing = list[ConsumerListed]

REFRESH_INTERVAL_S = 1.0


class ConsumerDirectory:
    """All active runtime consumers of one store, in memory, kept fresh.

    ``start()`` creates the tables if needed, loads the consumers and starts the refresh
    task; ``stop()`` ends it (the database is the caller's to close).
    """

    def __init__(
        self,
        store: ConsumerStore,
        *,
        refresh_interval_s: float = REFRESH_INTERVAL_S,
        groups: GroupDirectory | None = None,
    ) -> None:
        self.store = store
        # Where the runtime groups go, loaded with the consumers (one change counter).
        self.groups = groups
        self._by_hash: dict[str, Consumer] = {}
        self._hash_of: dict[str, str] = {}  # name → key hash, to drop a revoked key at once
        # Rotated-out keys still in their grace period: hash → (consumer, when it stops).
        self._old: dict[str, tuple[Consumer, float]] = {}
        self._version: int | None = None
        # Active runtime consumers not served because the config file has their names.
        self._shadowed: set[str] = set()
        # Serialises reloads with local changes: a reload that read the table just before
        # a local revoke must not put the revoked key back.
        self._lock = asyncio.Lock()
        self._failing = False
        # (consumer, pattern) pairs already said to be unusable: said once, not per reload.
        self._unusable: set[tuple[str, str]] = set()
        self._refresher = BackgroundTask("consumer-directory-refresh", every(refresh_interval_s, self._tick))
        # Told the groups whose members changed in a reload (the budgets renew their
        # spend from the records: ``Budgets.members_changed``).
        self.on_members_changed: Callable[[list[Group]], Awaitable[None]] | None = None

    async def start(self) -> None:
        await self.store.migrate()
        await self.refresh()
        self._refresher.start()

    async def stop(self) -> None:
        await self._refresher.stop()

    def names(self) -> set[str]:
        """The names of the active runtime consumers, served or not (``refresh``)."""
        return set(self._hash_of) | self._shadowed

    def reconfigured(self) -> None:
        """The config's consumers changed (a reload): the next refresh loads the runtime
        ones again, so a name the config gave up is served from the database again."""
        self._version = None

    def lookup(self, key: str) -> Consumer | None:
        """The active runtime consumer with this key, or None; memory only, no query."""
        if not key.startswith(KEY_PREFIX):
            return None
        key_hash = hash_key(key)
        consumer = self._by_hash.get(key_hash)
        if consumer is None and self._old:
            old = self._old.get(key_hash)
            if old is not None and time.time() < old[1]:
                return old[0]
        return consumer

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
            old: dict[str, tuple[Consumer, float]] = {}
            now = time.time()
            # A name belongs to one consumer: where the config file has it too, the
            # config's consumer is the one (its restrictions hold), and the runtime key
            # authenticates nobody until one of the two goes (a reload never makes such a
            # pair: ``GatewayRoot.reload`` refuses it; a start with one says so).
            owned = self.store.config_names()
            shadowed: set[str] = set()
            for key_hash, stored, old_hash, old_until in await self.store.active():
                if stored.name in owned:
                    shadowed.add(stored.name)
                    continue
                consumer = self._usable(stored)
                by_hash[key_hash] = consumer
                hash_of[consumer.name] = key_hash
                if old_hash is not None and old_until is not None and old_until > now:
                    old[old_hash] = (consumer, old_until)
            changed: list[Group] = []
            if self.groups is not None:
                before = self.groups.runtime
                self.groups.runtime = {g.name: g for g in await self.store.groups()}
                changed = _changed_groups(self._by_hash, by_hash, self.groups, before)
            self._by_hash, self._hash_of, self._old = by_hash, hash_of, old
            self._shadowed = shadowed
            self._version = version
        if changed and self.on_members_changed is not None:
            await self.on_members_changed(changed)
        return True

    def _usable(self, consumer: Consumer) -> Consumer:
        """``consumer`` without the ``allow_models`` patterns that do not compile: stored
        before the store refused them, each would fail every call the consumer makes.
        Left out, such a pattern matches no model (the call is refused, 403)."""
        models = consumer.allow_models
        if models is None:
            return consumer
        usable: list[str] = []
        for pattern in models:
            try:
                patterns.check(pattern)
            except ValueError as exc:
                if (consumer.name, pattern) not in self._unusable:
                    self._unusable.add((consumer.name, pattern))
                    log.warning(
                        "runtime consumer %r: allow_models entry matches no model: %s "
                        "(change it with PATCH /api/consumers/%s)",
                        consumer.name, exc, consumer.name,
                    )  # fmt: skip
                continue
            usable.append(pattern)
        return consumer if len(usable) == len(models) else dataclasses.replace(consumer, allow_models=tuple(usable))

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
        self,
        name: str,
        allow_models: Sequence[str] | None = None,
        groups: Sequence[str] = (),
        *,
        expires_at: float | None = None,
        budget: Budget | None = None,
        max_parallel: int | None = None,
        metadata: Mapping[str, object] | None = None,
        allow_tools: Mapping[str, Sequence[str]] | None = None,
    ) -> tuple[Consumer, str]:
        """``ConsumerStore.add``, and the key works here at once."""
        async with self._lock:
            consumer, key, key_hash = await self.store.add(
                name, allow_models, groups, expires_at=expires_at, budget=budget,
                max_parallel=max_parallel, metadata=metadata, allow_tools=allow_tools,
            )  # fmt: skip
            self._forget(name)
            self._by_hash[key_hash] = consumer
            self._hash_of[name] = key_hash
        return consumer, key

    async def rotate(self, name: str, grace_s: float = 0.0) -> str:
        """``ConsumerStore.rotate``: the new key works here at once, the old one for ``grace_s``."""
        async with self._lock:
            key, key_hash, until = await self.store.rotate(name, grace_s)
            # The store keeps one old key: a rotation ends the grace of the one before.
            self._forget_old(name)
            old_hash = self._hash_of.get(name)
            consumer = self._by_hash.pop(old_hash, None) if old_hash is not None else None
            if consumer is not None:
                self._by_hash[key_hash] = consumer
                self._hash_of[name] = key_hash
                if old_hash is not None and until > time.time():
                    self._old[old_hash] = (consumer, until)
            self._version = None  # the next refresh reloads whatever this missed
        return key

    async def edit(self, name: str, changes: Mapping[str, object]) -> ConsumerDetail:
        """``ConsumerStore.edit``; this process serves the edited consumer at once."""
        detail = await self.store.edit(name, changes)
        await self._reload()
        return detail

    async def get(self, name: str) -> ConsumerDetail | None:
        return await self.store.get(name)

    async def add_group(self, name: str, budget: Budget | None, max_parallel: int | None) -> Group:
        """``ConsumerStore.add_group``; this process holds calls to it at once."""
        group = await self.store.add_group(name, budget, max_parallel)
        await self._reload()
        return group

    async def edit_group(self, name: str, changes: Mapping[str, object]) -> Group:
        group = await self.store.edit_group(name, changes)
        await self._reload()
        return group

    async def remove_group(self, name: str) -> None:
        await self.store.remove_group(name)
        await self._reload()

    async def _reload(self) -> None:
        async with self._lock:
            self._version = None
        await self.refresh()

    async def revoke(self, name: str) -> None:
        """``ConsumerStore.revoke``, and the key stops working here at once."""
        async with self._lock:
            await self.store.revoke(name)
            self._forget(name)

    async def list(self) -> list[ConsumerInfo]:
        return await self.store.list()

    async def listed(self) -> _Listing:
        return await self.store.listed()

    def _forget(self, name: str) -> None:
        self._shadowed.discard(name)
        old = self._hash_of.pop(name, None)
        if old is not None:
            self._by_hash.pop(old, None)
        self._forget_old(name)

    def _forget_old(self, name: str) -> None:
        for key_hash in [h for h, (c, _) in self._old.items() if c.name == name]:
            del self._old[key_hash]


def _changed_groups(
    old: Mapping[str, Consumer], new: Mapping[str, Consumer], groups: GroupDirectory, before: Mapping[str, Group]
) -> list[Group]:
    """The groups whose runtime members differ between two loads, or that came, went or
    changed (each once, as it stands now, or as it was when it went)."""

    def members(consumers: Mapping[str, Consumer]) -> set[tuple[str, str]]:
        return {(group, c.name) for c in consumers.values() for group in c.groups}

    names = {group for group, _ in members(old) ^ members(new)}
    names |= {name for name in before.keys() ^ groups.runtime.keys()}
    names |= {name for name in before.keys() & groups.runtime.keys() if before[name] != groups.runtime[name]}
    found = [groups.get(name) or before.get(name) for name in sorted(names)]
    return [g for g in found if g is not None]
