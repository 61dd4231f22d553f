"""Text as a model reads it, for matching: NFKC, without the characters that show nothing.

request-block and ai-data-masking look for block words, deny words and sensitive values
in this form as well as in the text as sent, so that fullwidth letters (``ｐａｓｓｗｏｒｄ``,
``bob＠example.com``), compatibility characters (ligatures, circled digits), zero-width
characters and soft hyphens are no way around them. Removed are the Unicode
Default_Ignorable_Code_Points: zero-width space, non-joiner and joiner (U+200B..U+200D),
word joiner and the invisible operators (U+2060..U+2064), the byte order mark (U+FEFF),
the soft hyphen (U+00AD), bidirectional controls, variation selectors, tag characters,
the Hangul fillers and the combining grapheme joiner. A model reads text as if they were
not there.

The form is only looked at, never sent. What reaches the provider is the client's own
text with the matched spans replaced; ``Mapping`` tells where a span of the form came
from in it.

Cost: ``str.isascii()`` is a flag CPython keeps on every string, so ASCII text (most
prompts) is its own form for nothing. Latin-1 text costs a copy and the quick check
(``unicodedata.is_normalized``), a few microseconds a kilobyte; other text one scan for
fullwidth and ignorable characters on top, 5-10 nanoseconds a character. NFKC itself
(~150 ns a character) runs only when the quick check still fails after fullwidth ASCII
was made narrow.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from functools import lru_cache

# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties), in the Basic Multilingual
# Plane and beyond it (apart, for the quick looks below).
_IGNORABLE_BMP = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
)
_IGNORABLE_ASTRAL = "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
IGNORABLE = re.compile(f"[{_IGNORABLE_BMP}{_IGNORABLE_ASTRAL}]")
# Fullwidth ASCII and the ideographic space: NFKC makes each the one ASCII character, and
# CJK text is full of them (，：！？（）). ``str.replace`` does that ten times faster than
# NFKC, and the result is the same: NFKC of a text equals NFKC of it with any character
# replaced by its own decomposition.
_FULLWIDTH = re.compile("[\u3000\uff01-\uff5e]")
_NARROW = {chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)} | {"\u3000": " "}
# The ones Chinese and Japanese prose uses all the time: looked for one by one (``in`` is
# a memchr), which is faster than collecting every match of the class.
_COMMON_WIDE = "\uff0c\uff1a\uff1b\uff01\uff1f\uff08\uff09\u3000"
# The quick look for ignorable characters: a BMP one, or any astral character at all
# (emoji, mostly), after which the exact class decides.
_MAYBE_IGNORABLE = re.compile(f"[{_IGNORABLE_BMP}\U00010000-\U0010ffff]")
# Both looks in one: the regex engine costs 5-10 ns a character whatever the class, so
# text with neither (most) is scanned once.
_SPECIAL = re.compile(f"[\u3000\uff01-\uff5e{_IGNORABLE_BMP}\U00010000-\U0010ffff]")

# Characters of combining class 0 that compose with the character before them (the
# second half of a canonical composition: Indic two-part vowels, Hangul medial vowels
# and final consonants). Together with the marks of a non-zero class they are the
# characters that NFKC cannot treat apart from what precedes them.
BACKWARD = frozenset(
    "\u09be\u09d7\u0b3e\u0b56\u0b57\u0bbe\u0bd7\u0cc2\u0cd5\u0cd6\u0d3e\u0d57\u0dcf\u0ddf\u102e\u1b35"
    + "".join(map(chr, range(0x1161, 0x1176)))
    + "".join(map(chr, range(0x11A8, 0x11C3)))
    + "\U00011127\U0001133e\U00011357\U000114b0\U000114ba\U000114bd\U000115af\U00011930"
)


def normalise(text: str) -> str:
    """``text`` in NFKC, ignorable characters removed; ``text`` itself when that changes
    nothing."""
    if text.isascii():
        return text
    form = text
    try:
        text.encode("latin-1")  # a copy, but fifty times faster than a character class scan
    except UnicodeEncodeError:
        special = _SPECIAL.search(form)
        if special is not None:
            at = special.start()  # nothing before it to look at again
            form = _narrow(form, at)
            if _MAYBE_IGNORABLE.search(form, at) is not None:
                form = IGNORABLE.sub("", form)
    else:  # Western European text: the soft hyphen is its one ignorable character
        if "\xad" in form:
            form = form.replace("\xad", "")
    if not unicodedata.is_normalized("NFKC", form):
        form = unicodedata.normalize("NFKC", form)
    return text if form == text else form


# Whitespace other than one plain space: where a phrase may be broken by a line break, a
# tab or a doubled space. (Unicode's other spaces are a plain space in the normal form.)
_ODD_ASCII_SPACES = ("  ", "\n", "\t", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f")
_ODD_SPACES = (*_ODD_ASCII_SPACES, "\x85", "\u1680", "\u2028", "\u2029")
_SPACE_RUN = re.compile(r"\s+")


def one_space(text: str) -> str:
    """``text`` with every run of whitespace a single space; ``text`` itself when that
    changes nothing. Words and phrases are also matched in this view (request-block's
    lists, deny words), so ``project\\nnightingale`` or ``project  nightingale`` is
    ``project nightingale``. A few ``in`` looks (memchr) decide, about a microsecond a
    kilobyte; a regex pass would cost twenty."""
    odd = _ODD_ASCII_SPACES if text.isascii() else _ODD_SPACES
    if not any(space in text for space in odd):
        return text
    return _SPACE_RUN.sub(" ", text)


def _narrow(text: str, at: int) -> str:
    """Fullwidth ASCII made ASCII (what NFKC makes of it), at C speed; none before ``at``."""
    for ch in _COMMON_WIDE:
        if ch in text:
            text = text.replace(ch, _NARROW[ch])
    if _FULLWIDTH.search(text, at) is not None:
        for ch in set(_FULLWIDTH.findall(text)):
            text = text.replace(ch, _NARROW[ch])
    return text


# Characters that are always a piece of their own and come out of NFKC as they went in
# (a test checks each against this Python's Unicode data): ASCII, Latin-1 letters, basic
# Greek and Cyrillic, kana, CJK ideographs, Hangul syllables, the commonest CJK
# punctuation. ``Mapping`` looks at the other characters one by one.
PLAIN = (
    "\x00-\x7f\u00c0-\u00ff\u0391-\u03a1\u03a3-\u03a9\u03b1-\u03c9\u0400-\u045f"
    "\u3001\u3002\u300c-\u300f\u3041-\u3096\u30a1-\u30fa\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3"
)
_OTHERS = re.compile(f"[^{PLAIN}]+")

_APART, _IGNORED, _JOINS = 0, 1, 2


@lru_cache(maxsize=4096)
def _kind(ch: str) -> int:
    """Whether NFKC treats ``ch`` apart from the character before it, removes it, or may
    merge it into that character (a combining mark, the second half of a composition, or
    a character that decomposes into one of those)."""
    if IGNORABLE.match(ch) is not None:
        return _IGNORED
    if unicodedata.combining(ch) or ch in BACKWARD:
        return _JOINS
    first = unicodedata.normalize("NFKD", ch)[:1]
    return _JOINS if first and (unicodedata.combining(first) or first in BACKWARD) else _APART


@lru_cache(maxsize=4096)
def _form_of(piece: str) -> str:
    """The form of a piece of one or two characters (they repeat: cached)."""
    return normalise(piece)


class Mapping:
    """Where each part of ``normalise(text)`` came from in ``text``.

    The text is cut before every character that NFKC treats apart from what precedes it;
    each piece is normalised on its own. A piece that comes out as it went in maps
    character for character; one that changed (a fullwidth letter, a ligature, a letter
    with its combining marks, an ignorable character that vanished) maps as a whole. If
    the pieces do not add up to the form (a composition this cut did not foresee), the
    whole text is one piece: coarse, never wrong.

    Built only when a match was found in a form that differs from the text; only the
    runs of characters outside ``PLAIN`` (fullwidth ASCII made ASCII first) are looked
    at one by one.
    """

    __slots__ = ("_ends", "_pieces")

    def __init__(self, text: str, form: str) -> None:
        # (start, end) in the text, (at, to) in the form, whether it maps char for char.
        self._pieces: list[tuple[int, int, int, int, bool]] = []
        outs: list[str] = []
        pos = 0
        # Fullwidth ASCII becomes ASCII one character for one: no position moves, and CJK
        # punctuation no longer cuts the text into hundreds of runs.
        text = _narrow(text, 0)
        add = self._add
        for run in _OTHERS.finditer(text):
            first, end = run.span()
            if end - first == 1:  # the usual run (and a megabyte of zero-width ones): one piece
                if first > pos and _kind(text[first]) == _JOINS:
                    first -= 1
                if first > pos:
                    outs.append(add(pos, first, text[pos:first], True))
                part = text[first:end]
                out = _form_of(part)
                outs.append(add(first, end, out, out == part))
                pos = end
                continue
            lead = first
            while lead < end and _kind(text[lead]) == _IGNORED:
                lead += 1
            if first > pos and lead < end and _kind(text[lead]) == _JOINS:
                first -= 1  # a mark on the plain character before the run: one piece with it
            if first > pos:
                outs.append(self._add(pos, first, text[pos:first], True))
            for start, stop in _cuts(text, first, end):
                part = text[start:stop]
                out = _form_of(part) if stop - start == 1 else normalise(part)
                outs.append(self._add(start, stop, out, out == part))
            pos = end
        if pos < len(text):
            outs.append(self._add(pos, len(text), text[pos:], True))
        if "".join(outs) != form:
            self._pieces = [(0, len(text), 0, len(form), False)]
        self._ends = [p[3] for p in self._pieces]

    def _add(self, start: int, end: int, out: str, exact: bool) -> str:
        pieces = self._pieces
        at = pieces[-1][3] if pieces else 0
        if exact and pieces and pieces[-1][4] and pieces[-1][1] == start:
            pieces[-1] = (pieces[-1][0], end, pieces[-1][2], at + len(out), True)
        else:
            pieces.append((start, end, at, at + len(out), exact))
        return out

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the text that the form's ``[start, end)`` came from (``end >
        start``); ignorable characters at its edges are left out, those inside kept."""
        first = self._pieces[bisect_right(self._ends, start)]
        last = self._pieces[bisect_right(self._ends, end - 1)]
        lo = first[0] + (start - first[2]) if first[4] else first[0]
        hi = last[0] + (end - last[2]) if last[4] else last[1]
        return lo, hi


def _cuts(text: str, begin: int, end: int) -> list[tuple[int, int]]:
    """``text[begin:end]`` cut into pieces that NFKC normalises independently; an
    ignorable character is a piece of its own unless a combining character follows it."""
    starts = [begin]
    alone = [_kind(text[begin]) == _IGNORED]  # is the piece only an ignorable character?
    for i in range(begin + 1, end):
        kind = _kind(text[i])
        if kind == _JOINS:
            while len(starts) > 1 and alone[-1]:  # it composes across the ignorables
                starts.pop()
                alone.pop()
            alone[-1] = False
        else:
            starts.append(i)
            alone.append(kind == _IGNORED)
    return list(zip(starts, [*starts[1:], end], strict=True))
