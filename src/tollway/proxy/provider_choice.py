"""The providers one route can send to, and how the requested model picks among them.

A model that a ``model_providers`` pattern names goes to that provider, and fails over
only to the providers of the route's other ``model_providers`` patterns that match the
same model: never to a provider of the route's ``providers`` list, which would be sent a
model it does not serve (a Claude model to OpenAI: a 404 that hides the first
provider's 429 and its ``Retry-After``). A model that no pattern matches goes down the
route's ``providers`` list; with no list, no provider serves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tollway.patterns import PatternMap
from tollway.providers.base import Provider

if TYPE_CHECKING:
    from tollway.routing.routes import Route

# Model names come from clients: the memo of their candidates is bounded.
_MEMO_LIMIT = 4096


class RouteProviders:
    """The providers one route can send to, and how the requested model picks them."""

    def __init__(self, route: Route, providers: dict[str, Provider]) -> None:
        self.ordered: tuple[Provider, ...] = tuple(providers[p] for p in route.provider_ids)
        self.by_model = PatternMap(dict(route.model_providers)) if route.model_providers else None
        self._providers = providers
        self._memo: dict[str, tuple[Provider, ...]] = {}
        # Every provider the route can send to: its list, then those only model_providers
        # name (what GET /v1/models lists).
        named = (providers[pid] for _, pid in route.model_providers if pid in providers)
        self.every: tuple[Provider, ...] = tuple(dict.fromkeys((*self.ordered, *named)))

    def for_model(self, model: str | None) -> Sequence[Provider]:
        """The providers to try for ``model``, in order (see the module)."""
        if self.by_model is None or not model:
            return self.ordered
        found = self._memo.get(model)
        if found is None:
            matched = tuple(self._providers[pid] for pid in self.by_model.all_values(model) if pid in self._providers)
            found = matched or self.ordered
            if len(self._memo) < _MEMO_LIMIT:
                self._memo[model] = found
        return found
