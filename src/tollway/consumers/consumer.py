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
    # MCP tool patterns per server name (SPEC §12); a server without an entry: all its tools.
    allow_tools: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def may_use(self, model: str) -> bool:
        """``allow_models`` unset means every model; set, the model must match one pattern."""
        return self.allow_models is None or matches_any(self.allow_models, model)

    def tool_patterns(self, server: str) -> tuple[str, ...] | None:
        """The patterns ``server``'s tools must match for this consumer; None: every tool."""
        for name, patterns in self.allow_tools:
            if name == server:
                return patterns
        return None


class ConsumerInfo(TypedDict):
    """A consumer as ``GET /api/consumers`` and ``tollway consumers list`` show it: never the key."""

    name: str
    allow_models: list[str] | None
    groups: list[str]
    source: Source
    key_hint: str
    created_at: str | None
