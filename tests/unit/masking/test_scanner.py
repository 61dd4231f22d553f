"""The scanner of ai-data-masking (masking/scanner.py): against a plain one-alternation
reference on random rules and texts, full-width digits, patterns that match nothing, and
rules whose check fails. No sockets."""

from __future__ import annotations

import random
import re

import pytest

from tollway.masking.scanner import Hit, Rule, ScanError, Scanner


def reference(rules: list[Rule], text: str) -> list[tuple[int, int, int]]:
    """One alternation, leftmost first, then by priority, as the scanner promises."""
    out = []
    pos = 0
    while pos < len(text):
        for i, rule in enumerate(rules):
            assert rule.pattern is not None
            m = rule.pattern.match(text, pos)
            if m and m.end() > pos and (rule.accept is None or rule.accept(m.group())):
                out.append((*m.span(rule.group), i))
                pos = m.end()
                break
        else:
            pos += 1
    return out


RANDOM_PATTERNS = [
    r"AB-\d{2,4}",  # keyed by '-', two characters in
    r"B-1",  # keyed by '-' one character in: overlaps the one before
    r"-12",  # and at the marker itself
    r"(?<![0-9])\d{3}-\d{2}(?![0-9])",  # keyed by digits, fenced
    r"\d\d",  # every digit
    r"\d{2}(?=-)",
    r"(?i)\bproj[ _]?x\b",  # folded
    r"(?i)ab",
    r"\b[a-z0-9-]+\.corp\.com\b",  # anchored
    r"(?i)[a-z.]+\.CORP",  # anchored, casefolded, its run holds its own literal's characters
    r"(\w)\1x",  # back reference: alone, as written
    r"[a-z]+@[a-z]+\.io",  # anchored by "@"
    r"[a-z]{1,3}(?:\.[a-z]+)*@[a-z]+",  # anchored, with a group in its run
    r"(?<=x)\d+\.\d",  # gated
    r"[^ ]+@",  # general
    r"Q(?:zz|yy)+",
    r"k_[a-z]{3}",  # keyed by '_'
    r"(?P<n>zz)9",  # named group
    r"x(?P<n>y)z",  # the same name: cannot share a regex with the one before
    r"z+",
    r"\.[a-z]{2}",
]
PIECES = ["AB-12", "AB-1234567", "123-45", "1234-56", "77", "Proj X", "PROJ_x", "db-1.corp.com", "aax",
          "ab@cd.io", "Qzzyy", "k_abc", "zz9", "xyz", " ", " ", "-", ".", "ab", "9", "A.CORP", "x.corp.", "B-1",
          "yy", "@", "AB", "a.b@cd", "x12.3"]  # fmt: skip


def every_third_refused(text: str) -> bool:
    return len(text) % 3 != 0


@pytest.mark.parametrize("seed", range(60))
def test_scanner_finds_what_one_alternation_finds(seed: int) -> None:
    rng = random.Random(seed)
    patterns = rng.sample(RANDOM_PATTERNS, rng.randint(1, len(RANDOM_PATTERNS)))
    rules = [Rule(re.compile(p), accept=every_third_refused if rng.random() < 0.2 else None) for p in patterns]
    scanner = Scanner(rules)
    for _ in range(20):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 40)))
        got = [(h.start, h.end, h.rule) for h in scanner.scan(text)]
        assert got == reference(rules, text), (patterns, text)


def test_a_leading_digit_class_also_starts_at_full_width_digits() -> None:
    scanner = Scanner([Rule(re.compile(r"\d{3}"))])
    assert scanner.scan("电话１２３") == [Hit(2, 0, 5)]


def test_patterns_that_match_nothing_are_refused() -> None:
    with pytest.raises(ScanError):
        Scanner([Rule(re.compile(r"x*"))])


def test_a_failed_check_lets_the_next_rule_try_the_same_place() -> None:
    rules = [Rule(re.compile(r"\d{4}"), accept=lambda s: s != "1234"), Rule(re.compile(r"\d{3}"))]
    assert Scanner(rules).scan("1234 5678") == [Hit(0, 1, 3), Hit(5, 0, 9)]
