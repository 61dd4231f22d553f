"""Groups of consumers: a team's budget and cap on calls in flight, shared by its members.

A consumer names its groups (``groups: [...]``); a group *declared* somewhere carries
limits that bind all its members together. Today groups are declared in the config
file's top-level ``groups:`` list. The ``GroupDirectory`` is the one place the gateway
asks for a group by name, so runtime groups (made through the admin API and kept in the
database) join it as a second source: ``runtime`` is the map they go in (assign a new
map: that moves ``version``, which tells the budgets to look again), and a name the
config declares always wins. A name no source declares is a plain label (what
``limit_by_per_group`` keys on), with no limits of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tollway.config.schema import GroupConfig
from tollway.consumers.consumer import Budget, Consumer, Source


def undeclared(names: Iterable[str], declared: set[str]) -> str | None:
    """The first of a consumer's group ``names`` that no group is declared as, once any
    is declared (the rule the config check, the admin API and the CLI hold a consumer's
    groups to): a name outside them is then a typo that would escape the group's budget.
    None when every name is declared, or none is (names are then plain labels)."""
    return next((n for n in names if n not in declared), None) if declared else None


def named_twice(names: Sequence[str]) -> str | None:
    """The first of a consumer's group ``names`` that it gives twice, or None (the rule
    the config, the admin API and the CLI hold it to: a repeat would hold the consumer to
    that group's budget twice)."""
    return next((n for i, n in enumerate(names) if n in names[:i]), None)


@dataclass(frozen=True, slots=True)
class Group:
    """A declared group as the gateway sees it."""

    name: str
    budget: Budget | None = None
    max_parallel: int | None = None
    source: Source = "config"

    @property
    def limited(self) -> bool:
        return self.budget is not None or self.max_parallel is not None

    def shown(self, members: list[str]) -> dict[str, object]:
        """The group as the admin API and the command line show it (its spend aside)."""
        budget = self.budget
        return {
            "name": self.name,
            "source": self.source,
            "budget": {"usd": budget.usd, "period": budget.period} if budget is not None else None,
            "max_parallel": self.max_parallel,
            "members": members,
        }


def group_of(config: GroupConfig) -> Group:
    budget = Budget(config.budget.usd, config.budget.period) if config.budget is not None else None
    return Group(config.name, budget, config.max_parallel, "config")


class GroupDirectory:
    """Every declared group by name: the config's (``configure``, at start and at each
    reload) laid over the runtime ones (``runtime``, kept by whoever manages them).
    Lookups are a dict read: they run on every call of a consumer in a group."""

    def __init__(self) -> None:
        self._config: dict[str, Group] = {}
        self._runtime: Mapping[str, Group] = {}
        # Moves with every change, so what is derived from the groups can be remade.
        self.version = 0

    def configure(self, groups: Iterable[GroupConfig]) -> None:
        self._config = {g.name: group_of(g) for g in groups}
        self.version += 1

    @property
    def runtime(self) -> Mapping[str, Group]:
        return self._runtime

    @runtime.setter
    def runtime(self, groups: Mapping[str, Group]) -> None:
        self._runtime = groups
        self.version += 1

    def get(self, name: str) -> Group | None:
        found = self._config.get(name)
        return found if found is not None else self.runtime.get(name)

    def all(self) -> list[Group]:
        """Every declared group, config groups first."""
        return [*self._config.values(), *(g for n, g in self.runtime.items() if n not in self._config)]

    def limiting(self, consumer: Consumer) -> list[Group]:
        """The consumer's groups that carry a budget or ``max_parallel``, each once (a
        consumer stored naming one twice, before that was refused, is held to it once)."""
        found = []
        for name in dict.fromkeys(consumer.groups):
            group = self.get(name)
            if group is not None and group.limited:
                found.append(group)
        return found


__all__ = ["Group", "GroupDirectory", "group_of"]
