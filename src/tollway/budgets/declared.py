"""The config check that ties consumers to declared groups."""

from __future__ import annotations

from tollway.config.load import LoadedConfig
from tollway.consumers.groups import undeclared
from tollway.plugins.key_auth import placed_consumer_lists


def undeclared_groups(loaded: LoadedConfig) -> list[str]:
    """Problems (``place: why``) for consumers naming a group the config does not
    declare. A config without a ``groups:`` list keeps groups as plain labels (what
    ``limit_by_per_group`` keys on), as before groups could carry limits; once it
    declares groups, a name outside the list is a typo that would escape a budget.
    Each (consumer, group) is told once, at its first place: a rule inherits the
    default's consumers."""
    declared = {g.name for g in loaded.config.groups}
    problems: list[str] = []
    told: set[tuple[str, str]] = set()
    for place, cfg in placed_consumer_lists(loaded):
        for k, entry in enumerate(cfg.consumers):
            for m, name in enumerate(entry.groups):
                if undeclared((name,), declared) is None or (entry.name, name) in told:
                    continue
                told.add((entry.name, name))
                problems.append(
                    f"{place}.consumers[{k}].groups[{m}]: unknown group {name!r} of consumer {entry.name!r} "
                    "(declare it under groups:)"
                )
    return problems


__all__ = ["undeclared_groups"]
