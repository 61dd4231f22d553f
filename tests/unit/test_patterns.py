"""Model-name patterns (SPEC §3 modelMapping): exact, then the longest ``prefix*``, then
``~regex`` rules in order with ``$1``, then ``*``; ``""`` keeps the requested name."""

from __future__ import annotations

import pytest

from tollway.config.schema import ProviderConfig
from tollway.patterns import PatternMap, matches, matches_any
from tollway.providers.base import Provider
from tollway.testing.harness import make_services


def test_exact_beats_every_pattern() -> None:
    table = PatternMap({"*": "any", "gpt-*": "prefix", "~gpt-(.*)": "rx-$1", "gpt-4o": "exact"})
    assert table.lookup("gpt-4o") == "exact"


def test_the_longest_prefix_wins_whatever_the_declared_order() -> None:
    table = PatternMap({"gpt-*": "short", "gpt-4o-*": "long", "gpt-4*": "middle"})
    assert table.lookup("gpt-4o-mini") == "long"
    assert table.lookup("gpt-4-turbo") == "middle"
    assert table.lookup("gpt-3.5") == "short"
    assert table.lookup("claude") is None


def test_a_prefix_beats_a_regex_and_a_regex_beats_the_fallback() -> None:
    table = PatternMap({"*": "any", "~(.*)-mini": "rx-$1", "gpt-*": "prefix"})
    assert table.lookup("gpt-4o-mini") == "prefix"
    assert table.lookup("o4-mini") == "rx-o4"
    assert table.lookup("llama") == "any"


def test_regexes_apply_in_declared_order_with_substitution() -> None:
    table = PatternMap({"~claude-(\\d)-(.*)": "anthropic/$2-v$1", "~claude-(.*)": "generic/$1"})
    assert table.lookup("claude-3-haiku") == "anthropic/haiku-v3"
    assert table.lookup("claude-instant") == "generic/instant"
    reordered = PatternMap({"~claude-(.*)": "generic/$1", "~claude-(\\d)-(.*)": "anthropic/$2-v$1"})
    assert reordered.lookup("claude-3-haiku") == "generic/3-haiku"


def test_a_regex_must_match_the_whole_name() -> None:
    table = PatternMap({"~gpt": "rx"})
    assert table.lookup("gpt") == "rx"
    assert table.lookup("gpt-4") is None
    assert table.lookup("my-gpt") is None


def test_a_regex_value_without_captures_is_used_as_is() -> None:
    assert PatternMap({"~o[0-9]+": "reasoner"}).lookup("o3") == "reasoner"


def test_no_match_without_a_fallback_is_none() -> None:
    assert PatternMap({"gpt-4o": "x"}).lookup("gpt-4") is None
    assert PatternMap({}).lookup("anything") is None


def test_lookups_are_stable_when_repeated() -> None:
    table = PatternMap({"gpt-*": "a", "*": "b"})
    assert [table.lookup("gpt-x") for _ in range(3)] == ["a", "a", "a"]
    assert [table.lookup("other") for _ in range(3)] == ["b", "b", "b"]


def test_names_lists_only_the_non_wildcard_keys() -> None:
    table = PatternMap({"gpt-4o": "a", "gpt-*": "b", "~x(.*)": "c", "*": "d", "mini": ""})
    assert sorted(table.names()) == ["gpt-4o", "mini"]


def test_matches_and_matches_any() -> None:
    assert matches("*", "anything")
    assert matches("gpt-*", "gpt-4o") and not matches("gpt-*", "chatgpt")
    assert matches("gpt-4o", "gpt-4o") and not matches("gpt-4o", "gpt-4o-mini")
    assert matches("~gpt-\\d.*", "gpt-4o") and not matches("~gpt-\\d.*", "gpt-x")
    assert matches_any(["a", "b*"], "bee") and not matches_any(["a", "b*"], "cee")
    assert not matches_any([], "a")


def _provider(mapping: dict[str, str]) -> Provider:
    config = ProviderConfig(id="p", type="openai", modelMapping=mapping)
    return Provider(config, make_services().transport)


@pytest.mark.parametrize(
    ("requested", "upstream"),
    [
        ("gpt-3.5-turbo", "gpt-4o-mini"),  # prefix
        ("claude-3-opus", "mapped-opus"),  # regex with $1
        ("keep-me", "keep-me"),  # "" keeps the name
        ("gpt-4o", "gpt-4o"),  # exact mapping to itself
        ("llama-3", "fallback"),  # *
    ],
)
def test_a_provider_maps_the_requested_model(requested: str, upstream: str) -> None:
    provider = _provider(
        {"gpt-3.5*": "gpt-4o-mini", "~claude-3-(.*)": "mapped-$1", "keep-me": "", "gpt-4o": "gpt-4o", "*": "fallback"}
    )
    assert provider.map_model(requested) == upstream


def test_a_provider_without_mapping_keeps_every_name() -> None:
    assert _provider({}).map_model("whatever") == "whatever"


def test_an_empty_fallback_keeps_every_unmatched_name() -> None:
    provider = _provider({"gpt-4*": "gpt-4o", "*": ""})
    assert provider.map_model("gpt-4-turbo") == "gpt-4o"
    assert provider.map_model("mistral-large") == "mistral-large"


def test_all_values_are_every_matching_rule_in_lookup_order_each_once() -> None:
    table = PatternMap(
        {"claude-*": "a", "claude-3*": "b", "~claude-(.*)": "c-$1", "*": "z", "claude-3-opus": "e", "x*": "a"}
    )
    assert table.all_values("claude-3-opus") == ["e", "b", "a", "c-3-opus", "z"]
    assert table.all_values("gpt-4o") == ["z"]
    assert table.all_values("claude-3-opus")[0] == table.lookup("claude-3-opus")
    assert PatternMap({"claude-*": "a"}).all_values("gpt-4o") == []


@pytest.mark.parametrize("pattern", ["~(a+)+", "~(a|a)*", "~(a|aa)+b"])
def test_a_pattern_that_backtracks_is_no_match_instead_of_stopping_the_gateway(pattern: str) -> None:
    # With ``re`` each of these took minutes against this name (2^40 ways to split it),
    # the event loop stopped meanwhile: a client chose the name, an admin the pattern.
    # (``regex`` sees through some at once; the others it stops at its time limit.)
    name = "a" * 40 + "!"
    assert matches(pattern, name) is False
    table = PatternMap({pattern: "slow", "*": "fallback"})
    assert table.lookup(name) == "fallback"
    assert matches(pattern, "aaaa") is (pattern != "~(a|aa)+b")  # the pattern still works
