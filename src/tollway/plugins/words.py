"""A list of literal words, any of which may occur in a text: request-block's
``block_urls``, ``block_headers`` and ``block_bodies``.

Case-insensitive lists compare the texts' Unicode case folding (``str.casefold``: what
``re.IGNORECASE`` approximates, ``ß`` included as ``ss``). They are not one
``re.IGNORECASE`` alternation: that engine tests every position of the text against
every case variant, about 25 µs for a kilobyte of prompt with three words (measured),
where folding the text once and looking for each word with ``in`` (a two-way search in
C) takes about 1.3 µs. Past ``_LOOP_MAX`` words the loop costs more than a single
case-sensitive alternation of the folded words, which is then used instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tollway.masking.normalise import one_space

# About where one pass of a case-sensitive alternation over a kilobyte (~3.7 µs) beats
# one ``in`` a word (~0.33 µs each).
_LOOP_MAX = 10


class Words:
    """``found(text)``: whether any of the words is in ``text``. A word's runs of
    whitespace match any run of whitespace (``normalise.one_space``): a phrase broken by
    a line break, a tab or a doubled space is still the phrase."""

    __slots__ = ("_fold", "_regex", "_spaced", "_words")

    def __init__(self, words: Iterable[str], *, case_sensitive: bool) -> None:
        self._fold = not case_sensitive
        folded = (one_space(w.casefold() if self._fold else w) for w in words if w)
        self._words = tuple(dict.fromkeys(folded))
        self._regex = re.compile("|".join(re.escape(w) for w in self._words)) if len(self._words) > _LOOP_MAX else None
        self._spaced = any(" " in w for w in self._words)

    def __bool__(self) -> bool:
        return bool(self._words)

    def found(self, text: str) -> bool:
        if self._fold:
            text = text.casefold()
        if self._in(text):
            return True
        if self._spaced:  # (only lists with a phrase pay for the look at the spaces)
            spaced = one_space(text)
            return spaced is not text and self._in(spaced)
        return False

    def _in(self, text: str) -> bool:
        if self._regex is not None:
            return self._regex.search(text) is not None
        return any(w in text for w in self._words)
