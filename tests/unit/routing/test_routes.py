"""The route table (routing/routes.py, SPEC §2): host patterns, exact path / regex / prefix,
methods; the most specific match wins. The same through a real gateway is in
tests/system/test_routing.py."""

from __future__ import annotations

from typing import Any

from tollway.config.schema import RouteConfig
from tollway.routing.routes import Route, RouteTable


def table(*routes: dict[str, Any]) -> RouteTable:
    return RouteTable([Route.from_config(RouteConfig(**r)) for r in routes])


def matched(t: RouteTable, path: str, host: str = "gw.local", method: str = "POST") -> str | None:
    route = t.match(method, host, path)
    return route.name if route is not None else None


def test_an_exact_host_beats_a_wildcard_beats_any() -> None:
    t = table(
        {"name": "any", "path_prefix": "/v1/"},
        {"name": "wild", "path_prefix": "/v1/", "domains": ["*.example.com"]},
        {"name": "exact", "path_prefix": "/v1/", "domains": ["api.example.com"]},
    )
    assert matched(t, "/v1/chat/completions", "api.example.com") == "exact"
    assert matched(t, "/v1/chat/completions", "web.example.com") == "wild"
    assert matched(t, "/v1/chat/completions", "example.com") == "any"


def test_a_route_for_other_hosts_does_not_match() -> None:
    t = table({"name": "only", "path_prefix": "/", "domains": ["api.example.com", "*.example.net"]})
    assert matched(t, "/x", "api.example.com") == "only"
    assert matched(t, "/x", "a.example.net") == "only"
    assert matched(t, "/x", "other.example.com") is None
    assert matched(t, "/x", "") is None


def test_exact_path_beats_regex_beats_prefix() -> None:
    t = table(
        {"name": "prefix", "path_prefix": "/v1/"},
        {"name": "regex", "path_regex": "/v1/(chat|embeddings)(/.*)?"},
        {"name": "exact", "path": "/v1/chat/completions"},
    )
    assert matched(t, "/v1/chat/completions") == "exact"
    assert matched(t, "/v1/chat/other") == "regex"
    assert matched(t, "/v1/embeddings") == "regex"
    assert matched(t, "/v1/models") == "prefix"
    assert matched(t, "/v2/models") is None


def test_the_longest_prefix_wins_whatever_the_order() -> None:
    t = table(
        {"name": "root", "path_prefix": "/"},
        {"name": "v1", "path_prefix": "/v1/"},
        {"name": "chat", "path_prefix": "/v1/chat/"},
    )
    assert matched(t, "/v1/chat/completions") == "chat"
    assert matched(t, "/v1/models") == "v1"
    assert matched(t, "/healthz") == "root"


def test_an_exact_path_does_not_match_longer_paths() -> None:
    t = table({"name": "exact", "path": "/v1/models"})
    assert matched(t, "/v1/models") == "exact"
    assert matched(t, "/v1/models/gpt-4o") is None
    assert matched(t, "/v1/model") is None


def test_a_path_regex_must_match_the_whole_path() -> None:
    t = table({"name": "regex", "path_regex": "/v[0-9]+/models"})
    assert matched(t, "/v1/models") == "regex"
    assert matched(t, "/v1/models/gpt-4o") is None
    assert matched(t, "/v1/modelsX") is None
    assert matched(t, "/x/v1/models") is None


def test_a_route_without_a_path_rule_takes_every_path() -> None:
    t = table({"name": "all"})
    assert matched(t, "/") == "all"
    assert matched(t, "/anything/at/all") == "all"


def test_methods_restrict_a_route() -> None:
    t = table(
        {"name": "read", "path_prefix": "/v1/", "methods": ["get"]},
        {"name": "write", "path_prefix": "/v1/", "methods": ["POST"]},
    )
    assert matched(t, "/v1/models", method="GET") == "read"
    assert matched(t, "/v1/chat/completions", method="POST") == "write"
    assert matched(t, "/v1/chat/completions", method="DELETE") is None


def test_a_more_specific_route_for_another_method_does_not_shadow() -> None:
    t = table(
        {"name": "general", "path_prefix": "/v1/"},
        {"name": "models-get", "path": "/v1/models", "methods": ["GET"]},
    )
    assert matched(t, "/v1/models", method="GET") == "models-get"
    assert matched(t, "/v1/models", method="POST") == "general"


def test_the_first_declared_wins_a_tie() -> None:
    t = table({"name": "first", "path_prefix": "/v1/"}, {"name": "second", "path_prefix": "/v1/"})
    assert matched(t, "/v1/x") == "first"
