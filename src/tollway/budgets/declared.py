"""The config check that ties consumers to declared groups."""

from __future__ import annotations

from tollway.config.load import LoadedConfig
from tollway.plugins.key_auth import config_consumer_entries


def undeclared_groups(loaded: LoadedConfig) -> list[str]:
    """Problems (``place: why``) for consumers naming a group the config does not
    declare. A config without a ``groups:`` list keeps groups as plain labels (what
    ``limit_by_per_group`` keys on), as before groups could carry limits; once it
    declares groups, a name outside the list is a typo that would escape a budget."""
    declared = {g.name for g in loaded.config.groups}
    if not declared:
        return []
    problems = {
        f"key-auth consumer {entry.name!r}: unknown group {name!r} in its groups (declare it under groups:)": None
        for entry in config_consumer_entries(loaded)
        for name in entry.groups
        if name not in declared
    }
    return list(problems)


__all__ = ["undeclared_groups"]
