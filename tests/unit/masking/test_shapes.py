"""How the scanner looks for a pattern (masking/shapes.py): prefixes, case folding, first
characters, guards, anchoring literals. No sockets."""

from __future__ import annotations

import re

from tollway.masking.shapes import shape_of


def test_shapes_decide_how_a_pattern_is_looked_for() -> None:
    assert shape_of(re.compile(r"\bsk-\w+")).prefix == "sk-"
    assert shape_of(re.compile(r"(?i)acme-\d+")).prefix == "acme-" and shape_of(re.compile(r"(?i)acme")).folded
    assert shape_of(re.compile(r"(?<![0-9])\d{3}")).first == frozenset("0123456789０１２３４５６７８９")
    assert shape_of(re.compile(r"(?<![0-9.])\d")).guard >= frozenset("0123456789.")
    lead = shape_of(re.compile(r"\b[a-z0-9-]+\.corp\.com")).lead
    assert lead is not None and (lead.literal, lead.min_width) == (".corp.com", 1)
    assert shape_of(re.compile(r"a*")).nullable and shape_of(re.compile(r"(a)\1")).backrefs
