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
