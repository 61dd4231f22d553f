"""Consumers: the members and apps an organisation gives keys to, in the one shape every
plugin and listing sees, whether they come from the config file or the database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypedDict

from tollway.patterns import matches_any

Source = Literal["config", "runtime"]


@dataclass(frozen=True, slots=True)
class Consumer:
    """A consumer as every plugin sees it."""

    name: str
    allow_models: tuple[str, ...] | None = None
    groups: tuple[str, ...] = ()
    source: Source = "config"

    def may_use(self, model: str) -> bool:
        """``allow_models`` unset means every model; set, the model must match one pattern."""
        return self.allow_models is None or matches_any(self.allow_models, model)


class ConsumerInfo(TypedDict):
    """A consumer as ``GET /api/consumers`` and ``tollway consumers list`` show it: never the key."""

    name: str
    allow_models: list[str] | None
    groups: list[str]
    source: Source
    key_hint: str
    created_at: str | None
