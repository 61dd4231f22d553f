"""Consumers: the members and apps an organisation gives keys to."""

from __future__ import annotations

from dataclasses import dataclass

from tollway.patterns import matches_any


@dataclass(frozen=True, slots=True)
class Consumer:
    """A consumer as every plugin sees it, whether from the config file or the database."""

    name: str
    allow_models: tuple[str, ...] | None = None
    groups: tuple[str, ...] = ()
    source: str = "config"

    def may_use(self, model: str) -> bool:
        """``allow_models`` unset means every model; set, the model must match one pattern."""
        return self.allow_models is None or matches_any(self.allow_models, model)
