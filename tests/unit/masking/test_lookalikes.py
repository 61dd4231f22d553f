"""Latin lookalikes folded (masking/lookalikes.py): a word that slips another script's
letters into Latin, or is spelled only in lookalikes, reads as Latin; other dashes read
as ``-``; other scripts' words stay as written."""

from __future__ import annotations

import pytest

from tollway.masking.lookalikes import find_in_lookalikes, latin_lookalikes


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("my p\u0430ssword", "my password"),  # one Cyrillic а in a Latin word
        ("\u0440\u0430\u0455\u0455 it", "pass it"),  # a word all of Cyrillic lookalikes
        ("\u0405\u0415\u0421RET", "SECRET"),  # capitals
        ("pr\u03bfject", "project"),  # a Greek ο
        ("sk\u2011live\u2013x\u2212y\uff0dz", "sk-live-x-y-z"),  # non-breaking hyphen, en dash, minus, fullwidth
    ],
)
def test_lookalikes_and_dashes_read_as_latin(text: str, folded: str) -> None:
    assert latin_lookalikes(text) == folded


@pytest.mark.parametrize(
    "text",
    [
        "plain ASCII, unchanged",
        "\u043f\u0440\u0438\u0432\u0435\u0442",  # привет: п, и, в, т have no Latin lookalike
        "\u041c\u043e\u0441\u043a\u0432\u0430",  # Москва: some lookalikes, not all
        "\u03ba\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1",  # Greek
        "caf\u00e9 cr\u00e8me",  # Latin-1 letters are Latin already
        "\u4f60\u597d",
    ],
)
def test_other_text_is_returned_itself(text: str) -> None:
    assert latin_lookalikes(text) is text


def test_a_word_is_found_only_where_the_rule_folds_it() -> None:
    """``find_in_lookalikes`` looks first with every lookalike folded, then confirms in
    the view by the rule: ``сор`` in ``сорт`` (Russian, "sort") is not ``cop``."""
    words = ("cop", "password")

    def find(view: str) -> str | None:
        return next((w for w in words if w in view), None)

    assert find_in_lookalikes("a good \u0441\u043e\u0440\u0442", find) is None
    assert find_in_lookalikes("the \u0441\u043e\u0440 is here", find) == "cop"
    assert find_in_lookalikes("my p\u0430ssword", find) == "password"
    assert find_in_lookalikes("my password", find) is None  # ASCII: the text itself is for the caller
