"""Text with its lookalike letters and dashes made ASCII, for the words that refuse a call.

NFKC (``normalise``) leaves letters of other scripts as they are: ``pаssword`` with a
Cyrillic ``а``, or ``sk‑live`` with a non-breaking hyphen (U+2011, which NFKC makes the
hyphen U+2010, not ``-``), read as the words to a model and to a person, but not to a
search for them. This view folds them (a small part of Unicode's confusables, UTS #39:
the Cyrillic and Greek letters drawn like Latin ones, and the dash punctuation):

- every dash (``‐ ‑ ‒ – — ―``, the minus sign and their small and fullwidth forms) is ``-``;
- a word (a run of letters) holding a lookalike is folded when it also holds a Latin
  letter (one script slipped into another: ``pаssword``) or when every letter of it has
  a Latin lookalike (``раss``, all Cyrillic). A word of another script that only shares some
  letters with Latin (``привет``, ``Москва``) is left alone, so Russian or Greek text
  does not read as Latin words it happens to contain.

Only request-block's words and ai-data-masking's deny words are matched in this view:
they refuse a call and need no span. Masking keeps to the text and its normal form (a
replaced span must map back to the client's characters, and a value spelled with
lookalikes is another value).

Cost: none for ASCII text (``str.isascii``); otherwise the text with every lookalike
folded, about 10 µs a kilobyte of Russian, and the words looked for in that. Only a text
in which one is found there pays for the view by the rule above (``find_in_lookalikes``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

# Lookalike → the Latin letter (lower and upper case), from Unicode's confusables.
_LETTERS = {
    # Cyrillic
    "а": "a",
    "е": "e",
    "о": "o",
    "р": "p",
    "с": "c",
    "у": "y",
    "х": "x",
    "ѕ": "s",
    "і": "i",
    "ј": "j",
    "һ": "h",
    "ԁ": "d",
    "ԛ": "q",
    "ԝ": "w",
    "ӏ": "l",
    "ү": "y",
    "г": "r",
    "ь": "b",
    "ѵ": "v",
    "А": "A",
    "В": "B",
    "Е": "E",
    "К": "K",
    "М": "M",
    "Н": "H",
    "О": "O",
    "Р": "P",
    "С": "C",
    "Т": "T",
    "Х": "X",
    "Ѕ": "S",
    "І": "I",
    "Ј": "J",
    "Ү": "Y",
    "Ԛ": "Q",
    "Ԝ": "W",
    "Ӏ": "I",
    "Һ": "H",
    "Ԁ": "D",
    "Ѵ": "V",
    "Ь": "b",
    # Greek
    "α": "a",
    "γ": "y",
    "ϲ": "c",
    "ϳ": "j",
    "ο": "o",
    "ν": "v",
    "ι": "i",
    "κ": "k",
    "ρ": "p",
    "τ": "t",
    "υ": "u",
    "Α": "A",
    "Β": "B",
    "Ε": "E",
    "Ζ": "Z",
    "Η": "H",
    "Ι": "I",
    "Κ": "K",
    "Μ": "M",
    "Ν": "N",
    "Ο": "O",
    "Ρ": "P",
    "Τ": "T",
    "Υ": "Y",
    "Χ": "X",
    "Ϲ": "C",
    "Ϳ": "J",
    # Latin letters outside ASCII drawn as ASCII ones (dotless i, small capital I, alpha,
    # script g)
    "ı": "i",
    "ɪ": "i",
    "ɑ": "a",
    "ɡ": "g",
}
# Every character of Unicode's Dash_Punctuation (Pd; a test checks the list against this
# Python's Unicode data), and the others drawn as a hyphen: the minus sign, the modifier
# letter minus, the hyphen bullet and the heavy minus sign.
DASH_PUNCTUATION = (
    "\u058a\u05be\u1400\u1806\u2010\u2011\u2012\u2013\u2014\u2015\u2e17\u2e1a\u2e3a\u2e3b\u2e40\u2e5d"
    "\u301c\u3030\u30a0\ufe31\ufe32\ufe58\ufe63\uff0d\U00010ead"
)
_DASHES = DASH_PUNCTUATION + "\u2212\u02d7\u2043\u2796"
_TO_LATIN = str.maketrans(_LETTERS)
_TO_HYPHEN = str.maketrans(dict.fromkeys(_DASHES, "-"))
_LOOKALIKES = "".join(_LETTERS)
# Every lookalike and dash, to its ASCII letter: folded one ``str.replace`` at a time
# (``in`` first: a C search), ten times faster on Cyrillic text than ``str.translate``,
# which looks each character up in a mapping.
_EVERY = tuple({**_LETTERS, **dict.fromkeys(_DASHES, "-")}.items())
_ANY = re.compile(f"[{_LOOKALIKES}{_DASHES}]")
_ASCII_LETTER = re.compile(r"[a-zA-Z]")
# An ASCII letter beside a character that is not ASCII: where a word may mix scripts (a
# word holding both has them side by side somewhere). Simple classes: one quick scan.
_EDGE = re.compile(r"[a-zA-Z][^\x00-\x7f]|[^\x00-\x7f][a-zA-Z]")
# A word spelled only in lookalikes. Linear: a run followed by a letter fails where it
# starts, and no match can start inside a run (no boundary there).
_ALONE = re.compile(rf"\b[{_LOOKALIKES}]+\b")
# A letter of another script that is no lookalike (``ж``, ``Σ``): prose in that script.
_FOREIGN = re.compile(rf"[^\W\d_a-zA-Z\u00c0-\u024f{_LOOKALIKES}]")
# How far around a word spelled only in lookalikes such prose is looked for.
_NEAR = 40

T = TypeVar("T")


def latin_lookalikes(text: str) -> str:
    """``text`` with its dashes ``-`` and its lookalike words folded to Latin (see the
    module); ``text`` itself when that changes nothing. Linear in the text: a few regex
    scans, then work only around the words folded."""
    if text.isascii() or _ANY.search(text) is None:
        return text
    form = text
    for dash in _DASHES:
        if dash in form:
            form = form.replace(dash, "-")
    spans = [*_mixed_words(form), *_alone_words(form)]
    if not spans:
        return text if form == text else form
    spans.sort()
    pieces: list[str] = []
    done = 0
    for start, end in spans:
        start = max(start, done)  # (a word both rules found)
        if start < end:
            pieces += (form[done:start], form[start:end].translate(_TO_LATIN))
            done = end
    pieces.append(form[done:])
    folded = "".join(pieces)
    return text if folded == text else folded


def _mixed_words(text: str) -> list[tuple[int, int]]:
    """Where the words mixing ASCII letters with others are (each word once)."""
    if _ASCII_LETTER.search(text) is None:
        return []
    found: list[tuple[int, int]] = []
    at = 0
    while (edge := _EDGE.search(text, at)) is not None:
        i = edge.start()
        if not (text[i].isalpha() and text[i + 1].isalpha()):  # a letter beside punctuation
            at = i + 1
            continue
        start, end = i, i + 2
        while start > at and text[start - 1].isalpha():
            start -= 1
        while end < len(text) and text[end].isalpha():
            end += 1
        found.append((start, end))
        at = end
    return found


def _alone_words(text: str) -> list[tuple[int, int]]:
    """Where the words spelled only in lookalikes are, but those among prose of their
    own script (a letter of it that is no lookalike within ``_NEAR`` characters): in
    Greek or Russian text they are its words (``ΜΕΤΑ ΤΟ ΣΥΝΕΔΡΙΟ``), not Latin ones."""
    spans = (m.span() for m in _ALONE.finditer(text))
    return [(s, e) for s, e in spans if _FOREIGN.search(text, max(0, s - _NEAR), e + _NEAR) is None]


def find_in_lookalikes(text: str, find: Callable[[str], T | None]) -> T | None:
    """What ``find`` finds in ``text`` with its lookalikes folded (``latin_lookalikes``);
    None, or what it finds in none of the views, when that is nothing.

    First every lookalike and dash is folded, whatever its word (about 10 µs a kilobyte):
    a word found nowhere in that view is in no finer one, and most texts stop there.
    Only a text in which ``find`` finds something then gets the view that folds words
    by the rule (so ``сор`` in ``сорт`` is no ``cop``)."""
    if text.isascii() or _ANY.search(text) is None:  # (Chinese, Arabic, … text: one scan)
        return None
    everywhere = text
    for lookalike, latin in _EVERY:
        if lookalike in everywhere:
            everywhere = everywhere.replace(lookalike, latin)
    if everywhere is text or not find(everywhere):
        return None
    folded = latin_lookalikes(text)
    return find(folded) if folded is not text else None


__all__ = ["find_in_lookalikes", "latin_lookalikes"]
