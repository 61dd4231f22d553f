"""Text with its lookalike letters and dashes made ASCII, for the words that refuse a call.

NFKC (``normalise``) leaves letters of other scripts as they are: ``pаssword`` with a
Cyrillic ``а``, or ``sk‑live`` with a non-breaking hyphen (U+2011, which NFKC makes the
hyphen U+2010, not ``-``), read as the words to a model and to a person, but not to a
search for them. This view folds them (a part of Unicode's confusables, UTS #39: the
Cyrillic, Greek and some other letters drawn like Latin ones, and the dashes):

- every dash (Unicode's dash punctuation, ``‐ ‑ ‒ – — ―`` and the rest, the minus sign
  and the other signs drawn as a hyphen: ``⁃ ˗ ─ ー 一``) is ``-``;
- a word (a run of letters) holding a lookalike is folded when it also holds a Latin
  letter (one script slipped into another: ``pаssword``); or when every letter of it (two
  or more) has a Latin lookalike (``раss``, all Cyrillic) and no other word of its script
  is within 40 characters; or when it holds a lookalike that prose hardly uses (``ѕ``,
  ``ԝ``, ``ԁ``, the small capitals, Armenian, Cherokee and Lisu letters: ``пароль:
  раѕѕԝогԁ``). So a word of another script that only shares some letters with Latin
  (``привет``, ``Москва``), or one of common lookalikes in prose of its script (the
  Greek ``ΜΕΤΑ ΤΟΝ ΚΑΙΡΟ``, the Russian ``хороший сор``), is left alone: Russian or Greek
  text does not read as Latin words it happens to contain.

Only request-block's words and ai-data-masking's deny words are matched in this view:
they refuse a call and need no span. Masking keeps to the text and its normal form (a
replaced span must map back to the client's characters, and a value spelled with
lookalikes is another value).

Cost: none for ASCII text (``str.isascii``); otherwise the text with every lookalike
folded, about 10 µs a kilobyte of Russian, and the words looked for in that. Only a text
in which one is found there pays for the view by the rule above (``find_in_lookalikes``):
about 30 µs a kilobyte of Russian prose, and at most about 0.4 µs a character for text
made to cost the most (a megabyte of two-letter lookalike words): linear in any text.
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
}
# Lookalikes from scripts whose prose is rare in prompts, or no script's prose at all:
# Latin letters outside ASCII (dotless i, alpha, script g, the small capitals), Armenian,
# Cherokee and Lisu letters. A word holding one is always folded (below).
_RARE_LETTERS = {
    "ı": "i",
    "ɑ": "a",
    "ɡ": "g",
    **dict(zip("ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘʀꜱᴛᴜᴠᴡʏᴢ", "abcdefghijklmnoprstuvwyz", strict=True)),
    **dict(zip("օսհոց", "ounhg", strict=True)),
    **dict(zip("ᎪᏴᏟᎠᎬᏀᎻᎫᏦᏞᎷᏢᏚᎢᏙᏔᏃ", "ABCDEGHJKLMPSTVWZ", strict=True)),
    **dict(zip("ꓐꓑꓓꓔꓖꓗꓙꓚꓜꓝꓟꓠꓡꓢꓣꓦꓧꓪꓫꓬꓮꓰꓳꓴ", "BPDTGKJCZFMNLSRVHWXYAEOU", strict=True)),
}
# Cyrillic and Greek lookalikes that few languages' prose uses (Macedonian dze, Komi de,
# Kurdish qa and we, the Caucasian palochka, izhitsa; Greek symbol forms): rare too.
_RARE_OF_SCRIPTS = "ѕԁԛԝӏѵЅԚԜӀԀѴϲϳϹ\u037f"
_LETTERS.update(_RARE_LETTERS)
_RARE = frozenset(_RARE_OF_SCRIPTS) | frozenset(_RARE_LETTERS)
# Every character of Unicode's Dash_Punctuation (Pd; a test checks the list against this
# Python's Unicode data), and the others drawn as a hyphen: the minus sign, the modifier
# letter minus, the hyphen bullet and the heavy minus sign.
DASH_PUNCTUATION = (
    "\u058a\u05be\u1400\u1806\u2010\u2011\u2012\u2013\u2014\u2015\u2e17\u2e1a\u2e3a\u2e3b\u2e40\u2e5d"
    "\u301c\u3030\u30a0\ufe31\ufe32\ufe58\ufe63\uff0d\U00010ead"
)
# (Box drawing's horizontal lines, the katakana prolonged sound mark and the CJK "one"
# are drawn as a dash too.)
_DASHES = DASH_PUNCTUATION + "\u2212\u02d7\u2043\u2796\u2500\u2501\u30fc\u4e00"
_TO_LATIN = str.maketrans(_LETTERS)
_LOOKALIKES = "".join(_LETTERS)
# Every dash, and every lookalike and dash, to its ASCII character (``_replaced``).
_EVERY_DASH = tuple(dict.fromkeys(_DASHES, "-").items())
_EVERY = tuple({**_LETTERS, **dict.fromkeys(_DASHES, "-")}.items())
_ANY = re.compile(f"[{_LOOKALIKES}{_DASHES}]")
_ASCII_LETTER = re.compile(r"[a-zA-Z]")
# An ASCII letter beside a character that is not ASCII: where a word may mix scripts (a
# word holding both has them side by side somewhere). Simple classes: one quick scan.
_EDGE = re.compile(r"[a-zA-Z][^\x00-\x7f]|[^\x00-\x7f][a-zA-Z]")
# A word spelled only in lookalikes. Linear: a run followed by a letter fails where it
# starts, and no match can start inside a run (no boundary there).
# (Two letters or more: a one-letter word is in no word list worth the look.)
_ALONE = re.compile(rf"\b[{_LOOKALIKES}]{{2,}}\b")
# The scripts whose prose a word of their lookalikes may stand in, by their letters; and
# each lookalike's script among them (a lookalike of none is rare).
_SCRIPTS = (re.compile("[\u0400-\u052f]"), re.compile("[\u0370-\u03ff]"))
_SCRIPT_OF = {c: 0 if "\u0400" <= c <= "\u052f" else 1 for c in _LOOKALIKES if "\u0370" <= c <= "\u052f"}
# How far around a word spelled only in lookalikes such prose is looked for.
_NEAR = 40

T = TypeVar("T")


def latin_lookalikes(text: str) -> str:
    """``text`` with its dashes ``-`` and its lookalike words folded to Latin (see the
    module); ``text`` itself when that changes nothing. Linear in the text: a few regex
    scans, then work only around the words folded."""
    if text.isascii() or _ANY.search(text) is None:
        return text
    form = _replaced(text, _EVERY_DASH)
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


def _replaced(text: str, pairs: tuple[tuple[str, str], ...]) -> str:
    """``text`` with each character of ``pairs`` replaced: one ``str.replace`` at a time
    (``in`` first: a C search), ten times faster on Cyrillic text than ``str.translate``,
    which looks each character up in a mapping; ``text`` itself when none is in it."""
    for char, ascii_char in pairs:
        if char in text:
            text = text.replace(char, ascii_char)
    return text


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
    """Where the words spelled only in lookalikes are, but those in prose of their own
    script: a letter of it (another word's) within ``_NEAR`` characters. In Greek or
    Russian text they are its words (``ΜΕΤΑ ΤΟΝ ΚΑΙΡΟ``, ``хороший сор``), not Latin
    ones. A word holding a rare lookalike (``_RARE``: ``раѕѕ``) is folded wherever it is.
    Linear: each script's letters are looked for from each place at most once."""
    found: list[tuple[int, int]] = []
    before = [_NextLetter(rx, text) for rx in _SCRIPTS]
    after = [_NextLetter(rx, text) for rx in _SCRIPTS]
    script_of, rare = _SCRIPT_OF, _RARE
    for word in _ALONE.finditer(text):
        start, end = word.span()
        script = script_of.get(text[start])
        if script is None or not rare.isdisjoint(word.group()):
            found.append((start, end))
        elif before[script](max(0, start - _NEAR)) >= start and after[script](end) >= end + _NEAR:
            found.append((start, end))  # no word of its script near it
    return found


class _NextLetter:
    """Where the first letter ``rx`` finds at or after a place is, for places asked in
    rising order: a stretch found to hold none is not searched again."""

    __slots__ = ("_at", "_from", "_rx", "_text")

    def __init__(self, rx: re.Pattern[str], text: str) -> None:
        self._rx, self._text = rx, text
        self._from = self._at = -1

    def __call__(self, place: int) -> int:
        if self._from <= place <= self._at:
            return self._at
        found = self._rx.search(self._text, place)
        self._from, self._at = place, found.start() if found is not None else _NOWHERE
        return self._at


# Where ``_NextLetter`` says a letter is when there is none: past any text.
_NOWHERE = 1 << 62


def find_in_lookalikes(text: str, find: Callable[[str], T | None]) -> T | None:
    """What ``find`` finds in ``text`` with its lookalikes folded (``latin_lookalikes``);
    None, or what it finds in none of the views, when that is nothing.

    First every lookalike and dash is folded, whatever its word (about 10 µs a kilobyte):
    a word found nowhere in that view is in no finer one, and most texts stop there.
    Only a text in which ``find`` finds something then gets the view that folds words
    by the rule (so ``сор`` in ``сорт`` is no ``cop``)."""
    if text.isascii() or _ANY.search(text) is None:  # (Chinese, Arabic, … text: one scan)
        return None
    everywhere = _replaced(text, _EVERY)
    if everywhere is text or not find(everywhere):
        return None
    folded = latin_lookalikes(text)
    return find(folded) if folded is not text else None


__all__ = ["find_in_lookalikes", "latin_lookalikes"]
