"""The spend the command line shows: what the usage records say a budget's current
period cost (``cost_usd`` summed, as a gateway rebuilds its counter from them; calls
still running are not in it). The command line has no state store to ask."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tollway.config.load import LoadedConfig
    from tollway.consumers.consumer import Budget, ConsumerInfo
    from tollway.consumers.store import ConsumerStore
    from tollway.storage import Database


async def members_of(store: ConsumerStore, config: Sequence[ConsumerInfo], group: str) -> list[str]:
    """The consumers, config and runtime, that name ``group``."""
    return sorted({c["name"] for c in [*config, *await store.list()] if group in c["groups"]})


async def consumer_spend(
    store: ConsumerStore,
    config: Sequence[ConsumerInfo],
    loaded: LoadedConfig,
    name: str,
    budget: Budget | None,
    groups: Sequence[str],
) -> list[dict[str, object]]:
    """A consumer's spend entries: its own budget's and each declared group's."""
    from tollway.consumers.groups import group_of

    entries = [] if budget is None else [await recorded_spend(store.db, "consumer", name, budget, [name])]
    declared = {g.name: g for g in await store.groups()}
    declared.update((g.name, group_of(g)) for g in loaded.config.groups)
    for group_name in groups:
        group = declared.get(group_name)
        if group is not None and group.budget is not None:
            members = await members_of(store, config, group.name)
            entries.append(await recorded_spend(store.db, "group", group.name, group.budget, members))
    return entries


async def recorded_spend(
    db: Database, kind: str, name: str, budget: Budget, members: Sequence[str]
) -> dict[str, object]:
    """One ``spend`` entry, as ``GET /api/consumers/NAME`` shows it, for the budget of
    ``name`` (a consumer, or a group whose members are ``members``)."""
    from tollway.budgets.history import NANO, SpendHistory
    from tollway.budgets.periods import span_of

    span = span_of(budget.period, time.time())
    spent = await SpendHistory(db).spent(members, span.start_ms, span.end_ms)
    return {
        "kind": kind,
        "name": name,
        "period": budget.period,
        "spend_usd": spent / NANO,
        "budget_usd": budget.usd,
        "resets_at": span.resets_at,
    }
