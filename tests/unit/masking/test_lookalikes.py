"""Latin lookalikes folded (masking/lookalikes.py): a word that slips another script's
letters into Latin, or is spelled only in lookalikes, reads as Latin; other dashes read
as ``-``; other scripts' words stay as written."""

from __future__ import annotations

import unicodedata

import pytest

from tollway.masking.lookalikes import DASH_PUNCTUATION, find_in_lookalikes, latin_lookalikes


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("my p\u0430ssword", "my password"),  # one Cyrillic а in a Latin word
        ("\u0440\u0430\u0455\u0455 it", "pass it"),  # a word all of Cyrillic lookalikes
        ("\u0405\u0415\u0421RET", "SECRET"),  # capitals
        ("pr\u03bfject", "project"),  # a Greek ο
        ("sk\u2011live\u2013x\u2212y\uff0dz", "sk-live-x-y-z"),  # non-breaking hyphen, en dash, minus, fullwidth
        ("sk\u2043live\u02d7x", "sk-live-x"),  # hyphen bullet, modifier letter minus
        ("p\u03b1ssword", "password"),  # Greek α
        ("\u04c0NTERNAL", "INTERNAL"),  # Cyrillic capital palochka
        ("\u0440\u0430\u0455\u0455\u051d\u043e\u0433\u0501", "password"),  # all Cyrillic, г for r
        ("\u0455k-l\u0131ve", "sk-live"),  # Cyrillic ѕ, Latin dotless ı
        ("passw\u0585rd", "password"),  # Armenian օ
        ("\u1d18\u1d00\ua731\ua731\u1d21\u1d0f\u0280\u1d05", "password"),  # small capitals
        ("P\u13aaSSWORD \ua4d1ASS", "PASSWORD PASS"),  # Cherokee Ꭺ, Lisu ꓑ
        ("sk\u2500live\u30fcx\u4e00y", "sk-live-x-y"),  # box drawing, katakana ー, CJK 一
        # Beside a letter of another script, or after a word of prose of their own: still
        # Latin, since a rare lookalike (ѕ, ԝ, ԁ) is no word of prose.
        ("\u0440\u0430\u0455\u0455 \u4e2d", "pass \u4e2d"),
        (
            "\u043f\u0430\u0440\u043e\u043b\u044c: \u0440\u0430\u0455\u0455\u051d",
            "\u043f\u0430\u0440\u043e\u043b\u044c: passw",
        ),
        ("the \u0440\u051d is \u03a3", "the pw is \u03a3"),
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
        "\u039c\u0395\u03a4\u0391 \u03a4\u039f \u03a3\u03a5\u039d\u0395\u0394\u03a1\u0399\u039f",  # Greek prose
        "\u0445\u043e\u0440\u043e\u0448\u0438\u0439 \u0441\u043e\u0440",  # хороший сор: Russian prose
        "\u039c\u0395\u03a4\u0391 \u03a4\u039f\u039d \u039a\u0391\u0399\u03a1\u039f",  # Greek of lookalikes only
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


def test_every_dash_of_unicode_is_folded() -> None:
    dashes = [chr(c) for c in range(0x80, 0x110000) if unicodedata.category(chr(c)) == "Pd"]
    assert sorted(DASH_PUNCTUATION) == dashes
    assert latin_lookalikes("x".join(dashes) + " \u0430\u0430") == "x".join("-" * len(dashes)) + " aa"


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        # a long word of no lookalike, then a one-letter word (not looked at)
        ("\u0436" * 200_000 + " \u0430", "\u0436" * 200_000 + " \u0430"),
        ("x" * 200_000 + " p\u0430ssword", "x" * 200_000 + " password"),  # a long Latin word, then a mixed one
        ("\u043e" * 200_000 + "\u043f", "\u043e" * 200_000 + "\u043f"),  # lookalikes, then another letter
        ("x\u0430" * 100_000, "xa" * 100_000),  # one long word, mixed all along
        ("\u0430\u0430 " * 70_000, "\u0430\u0430 " * 70_000),  # short words of lookalikes: prose of theirs
        ("\u0440\u0455 " * 70_000, "ps " * 70_000),  # … each with a rare one (ѕ): all folded
        ("\u0430\u0430 \u0436 " * 50_000, "\u0430\u0430 \u0436 " * 50_000),  # each beside prose of its script
    ],
)
def test_long_words_cost_time_in_proportion(text: str, folded: str) -> None:
    """Each of these took minutes (a pattern that backtracked over each word from each
    of its letters); the fold is linear in the text, and folds them as the rule says."""
    assert latin_lookalikes(text) == folded
