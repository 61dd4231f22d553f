"""Routes: which configured route a request belongs to.

A route matches on host pattern, path (exact, prefix, or a regex that must match the
whole path, as Envoy and so Higress match it) and method. Among the
routes that match, the most specific wins: exact path, then regex, then the longest
prefix; then the most specific host pattern; then the first declared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tollway.config.schema import RouteConfig
from tollway.routing.hosts import host_matches, specificity

_ANY_HOST = ("*",)


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    domains: tuple[str, ...]
    methods: frozenset[str] | None
    path: str | None
    path_prefix: str | None
    path_regex: re.Pattern[str] | None
    provider_ids: tuple[str, ...]
    model_providers: tuple[tuple[str, str], ...]
    # The MCP server this route relays to (SPEC §12); None for a model route.
    mcp_server: str | None = None

    @classmethod
    def from_config(cls, rc: RouteConfig) -> Route:
        prefix = rc.path_prefix
        if rc.path is None and rc.path_prefix is None and rc.path_regex is None:
            prefix = "/"
        return cls(
            name=rc.name,
            domains=tuple(rc.domains),
            methods=frozenset(rc.methods) if rc.methods else None,
            path=rc.path,
            path_prefix=prefix,
            path_regex=re.compile(rc.path_regex) if rc.path_regex is not None else None,
            provider_ids=tuple(rc.provider_ids()),
            model_providers=tuple(rc.model_providers.items()),
            mcp_server=rc.mcp_server,
        )

    def path_rank(self, path: str) -> int:
        """How specifically this route's path rule matches ``path``; -1 when it does not."""
        if self.path is not None:
            return 1_000_000 if path == self.path else -1
        if self.path_regex is not None:
            return 500_000 if self.path_regex.fullmatch(path) else -1
        assert self.path_prefix is not None
        return len(self.path_prefix) if path.startswith(self.path_prefix) else -1

    def host_rank(self, host: str) -> int:
        if self.domains == _ANY_HOST:  # the default: no pattern to try
            return 0
        return max((specificity(d) for d in self.domains if host_matches(d, host)), default=-1)


class RouteTable:
    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        self.by_name = {r.name: r for r in routes}

    def match(self, method: str, host: str, path: str) -> Route | None:
        best: Route | None = None
        best_key = (-1, -1)
        for route in self.routes:
            if route.methods is not None and method not in route.methods:
                continue
            prank = route.path_rank(path)
            if prank < 0:
                continue
            hrank = route.host_rank(host)
            if hrank < 0:
                continue
            if (prank, hrank) > best_key:
                best, best_key = route, (prank, hrank)
        return best
