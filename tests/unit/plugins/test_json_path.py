"""The gjson path getter of ai-statistics (plugins/json_path.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tollway.plugins import json_path


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a", {"b": [1, {"c": "x"}]}),
        ("a.b.1.c", "x"),
        ("a.b.0", 1),
        ("a.b.#", 2),
        ("a.b.5", json_path.MISSING),
        ("a.b.x", json_path.MISSING),
        ("a.z", json_path.MISSING),
        ("a.b.0.c", json_path.MISSING),
        ("list.#.n", [1, 2]),
        ("k\\.with\\.dots", True),
    ],
)
def test_paths(path: str, expected: Any) -> None:
    doc = {"a": {"b": [1, {"c": "x"}]}, "list": [{"n": 1}, {"m": 0}, {"n": 2}], "k.with.dots": True}
    assert json_path.get(doc, json_path.parse(path)) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # Higress's own example: the last message's content.
        ("messages.@reverse.0.content", "last"),
        ("messages.@reverse.#", 2),
        ("messages.@reverse.#.content", ["last", "first"]),
        ("@reverse.x", 1),  # an object: the same keys
        ("x.@reverse", 1),  # a number stays itself
        ("\\@reverse", "a key"),  # escaped: a key of that name
    ],
)
def test_the_reverse_modifier(path: str, expected: Any) -> None:
    doc = {"messages": [{"content": "first"}, {"content": "last"}], "x": 1, "@reverse": "a key"}
    assert json_path.get(doc, json_path.parse(path)) == expected


def test_an_object_reversed_keeps_its_keys_in_reverse_order() -> None:
    reversed_ = json_path.get({"a": 1, "b": 2}, json_path.parse("@reverse"))
    assert list(reversed_.items()) == [("b", 2), ("a", 1)]


@pytest.mark.parametrize("path", ["messages.@this", "a.@valid.b", "@flatten"])
def test_other_modifiers_are_refused_naming_the_one_supported(path: str) -> None:
    with pytest.raises(json_path.PathError, match="only @reverse"):
        json_path.parse(path)
