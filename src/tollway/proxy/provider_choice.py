"""The providers one route can send to, and how the requested model picks among them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tollway.patterns import PatternMap
from tollway.providers.base import Provider

if TYPE_CHECKING:
    from tollway.routing.routes import Route


class RouteProviders:
    """The providers one route can send to, and how the requested model picks one."""

    def __init__(self, route: Route, providers: dict[str, Provider]) -> None:
        self.ordered: tuple[Provider, ...] = tuple(providers[p] for p in route.provider_ids)
        self.by_model = PatternMap(dict(route.model_providers)) if route.model_providers else None
        self._providers = providers

    def for_model(self, model: str | None) -> Sequence[Provider]:
        if self.by_model is not None and model:
            pid = self.by_model.lookup(model)
            if pid is not None:
                chosen = self._providers[pid]
                return (chosen, *(p for p in self.ordered if p is not chosen))
        return self.ordered
