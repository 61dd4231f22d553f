"""What a regular expression looks like from the outside: where its matches can start,
which literals they must contain, what may not precede them.

The scanner uses this to decide how to look for a pattern without trying it at every
position of the text. The analysis reads the stdlib's own parse tree (``re._parser``):
private, but the one exact description of a pattern. Every answer errs on the safe side
(a first-character set may be too large, never too small; a guard too small, never too
large), and if the tree ever has a shape this module does not know, ``shape_of`` says
"anything may happen" and the pattern goes to the scanner's slow, always-right pass.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_parser: Any = importlib.import_module("re._parser")
_k: Any = importlib.import_module("re._constants")

DIGITS = frozenset("0123456789０１２３４５６７８９")
"""What a leading ``\\d`` is taken to start with: ASCII and full-width digits."""
MAX_FIRST = 24  # beyond this many possible first characters a set is "unknown"

_ZERO_WIDTH = frozenset({_k.AT, _k.ASSERT, _k.ASSERT_NOT})
_REPEATS = frozenset({_k.MAX_REPEAT, _k.MIN_REPEAT, _k.POSSESSIVE_REPEAT})
_BACKREFS = frozenset({_k.GROUPREF, _k.GROUPREF_EXISTS, _k.GROUPREF_IGNORE})
_CATEGORIES = {
    _k.CATEGORY_DIGIT: r"\d",
    _k.CATEGORY_NOT_DIGIT: r"\D",
    _k.CATEGORY_SPACE: r"\s",
    _k.CATEGORY_NOT_SPACE: r"\S",
    _k.CATEGORY_WORD: r"\w",
    _k.CATEGORY_NOT_WORD: r"\W",
}

Items = list[tuple[Any, Any, int]]  # (op, argument, flags in force)


@dataclass(frozen=True, slots=True)
class Lead:
    """A pattern that starts with a run of single characters (``\\b[a-z0-9-]+``) and
    then a literal (``.corp.example.com``, or one punctuation mark like ``@``): ``char``
    matches any one character of the run, at least ``min_width`` of which come before
    the literal."""

    literal: str
    folded: bool
    char: str
    min_width: int


@dataclass(frozen=True, slots=True)
class Shape:
    """``prefix``: a literal every match starts with (``folded``: compared casefolded,
    the pattern ignores its case). ``first``: the characters a match can start with, when
    known and few. ``lead``: see ``Lead``. ``literals``: literals every match contains,
    each with whether it is casefolded. ``guard``: ASCII characters that can never come
    just before a match (from a leading ``(?<![0-9])``). ``nullable``: it can match the
    empty string. ``backrefs``: it refers to its own groups."""

    prefix: str = ""
    folded: bool = False
    first: frozenset[str] | None = None
    lead: Lead | None = None
    literals: tuple[tuple[str, bool], ...] = ()
    guard: frozenset[str] = frozenset()
    nullable: bool = False
    backrefs: bool = False


def shape_of(pattern: re.Pattern[str]) -> Shape:
    try:
        tree = _parser.parse(pattern.pattern, pattern.flags)
        flags: int = tree.state.flags
        items = list(_flatten(tree.data, flags))
        first, nullable = _first_of_seq(tree.data, flags)
        prefix, folded = _prefix(items)
        return Shape(
            prefix=prefix,
            folded=folded,
            first=first,
            lead=None if prefix else _lead(items),
            literals=_literals(items),
            guard=_guard(items),
            nullable=nullable,
            backrefs=_has_backrefs(tree.data),
        )
    except Exception:  # an unforeseen tree: the slow pass is always right
        return Shape(nullable=pattern.fullmatch("") is not None)


def scoped(pattern: re.Pattern[str]) -> str:
    """The pattern's source with its flags made local, so it can sit inside another."""
    source = pattern.pattern
    while m := _LEADING_FLAGS.match(source):
        source = source[m.end() :]
    letters = _letters(pattern.flags)
    if pattern.flags & re.VERBOSE:
        source += "\n"  # a trailing comment must not swallow our closing parenthesis
    return f"(?{letters}:{source})" if letters else f"(?:{source})"


_LEADING_FLAGS = re.compile(r"\(\?[aiLmsux]+\)")
_FLAG_LETTERS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"), (re.VERBOSE, "x"), (re.ASCII, "a"))


def _letters(flags: int) -> str:
    return "".join(letter for flag, letter in _FLAG_LETTERS if flags & flag)


def _flatten(data: Any, flags: int) -> Iterable[tuple[Any, Any, int]]:
    """The top-level items of a pattern, groups opened inline, with the flags in force."""
    for op, av in data:
        if op is _k.SUBPATTERN:
            _group, add, remove, sub = av
            yield from _flatten(sub.data, (flags | add) & ~remove)
        else:
            yield op, av, flags


def _caseless(ch: str, flags: int) -> bool:
    return bool(flags & re.IGNORECASE) and ch.lower() != ch.upper()


def _prefix(items: Items) -> tuple[str, bool]:
    out: list[str] = []
    folded = False
    for op, av, flags in items:
        if op in _ZERO_WIDTH and not out:
            continue  # \b, (?<!…) before the first character consume nothing
        if op is not _k.LITERAL:
            break
        out.append(chr(av))
        folded = folded or _caseless(chr(av), flags)
    text = "".join(out)
    return (text.casefold(), True) if folded else (text, False)


def _literals(items: Items) -> tuple[tuple[str, bool], ...]:
    found: list[tuple[str, bool]] = []
    run: list[str] = []
    folded = False
    for op, av, flags in [*items, (None, None, 0)]:
        if op is _k.LITERAL:
            run.append(chr(av))
            folded = folded or _caseless(chr(av), flags)
            continue
        if len(run) >= 2:
            text = "".join(run)
            found.append((text.casefold(), True) if folded else (text, False))
        run, folded = [], False
    return tuple(found)


def _lead(items: Items) -> Lead | None:
    chars: list[str] = []
    min_width = 0
    for n, (op, av, flags) in enumerate(items):
        if op is _k.LITERAL:
            run: list[str] = []
            folded = False
            for run_op, run_av, run_flags in items[n:]:
                if run_op is not _k.LITERAL:
                    break
                run.append(chr(run_av))
                folded = folded or _caseless(chr(run_av), run_flags)
            if not chars or (len(run) < 2 and (run[0].isalnum() or run[0].isspace())):
                return None  # one letter is too common to look for (one "@" is not)
            text = "".join(run)
            return Lead(text.casefold() if folded else text, folded, "(?:" + "|".join(chars) + ")", min_width)
        width = _single_chars(op, av, flags, chars)
        if width is None:
            return None
        min_width += width
    return None


def _single_chars(op: Any, av: Any, flags: int, out: list[str]) -> int | None:
    """Adds to ``out`` a regex for each single character the item may consume, and
    returns the least it consumes; ``None`` when it is more than single characters."""
    if op in _ZERO_WIDTH:
        return 0
    if op is _k.LITERAL:
        out.append(_with_flags(re.escape(chr(av)), flags))
        return 1
    if op is _k.IN:
        source = _class_source(av)
        if source is None:
            return None
        out.append(_with_flags(source, flags))
        return 1
    if op is _k.ANY:
        out.append(_with_flags(".", flags))
        return 1
    if op is _k.SUBPATTERN:
        _group, add, remove, sub = av
        return _run_of(sub.data, (flags | add) & ~remove, out)
    if op in _REPEATS:
        least = _run_of(av[2].data, flags, out)
        return None if least is None else av[0] * least
    return None  # branches, references: keep it simple


def _run_of(data: Any, flags: int, out: list[str]) -> int | None:
    least = 0
    for op, av in data:
        width = _single_chars(op, av, flags, out)
        if width is None:
            return None
        least += width
    return least


def _with_flags(source: str, flags: int) -> str:
    letters = _letters(flags & (re.IGNORECASE | re.DOTALL | re.ASCII))
    return f"(?{letters}:{source})" if letters else source


def _class_source(items: Any) -> str | None:
    parts: list[str] = []
    for op, av in items:
        if op is _k.NEGATE:
            parts.insert(0, "^")
        elif op is _k.LITERAL:
            parts.append(re.escape(chr(av)))
        elif op is _k.RANGE:
            parts.append(f"{re.escape(chr(av[0]))}-{re.escape(chr(av[1]))}")
        elif op is _k.CATEGORY and av in _CATEGORIES:
            parts.append(_CATEGORIES[av])
        else:
            return None
    return "[" + "".join(parts) + "]"


def _guard(items: Items) -> frozenset[str]:
    chars: set[str] = set()
    for op, av, flags in items:
        if op is _k.ASSERT_NOT and av[0] < 0 and len(av[1].data) == 1:  # (?<![…])
            sub_op, sub_av = av[1].data[0]
            chars |= _ascii_members(sub_op, sub_av, flags)
        elif op not in _ZERO_WIDTH:
            break
    return frozenset(chars)


def _ascii_members(op: Any, av: Any, flags: int) -> set[str]:
    """The ASCII characters one character item matches (fewer if unsure, never more)."""
    if op is _k.LITERAL:
        chars = {chr(av)} if av < 128 else set()
    elif op is _k.IN:
        chars = set()
        negate = False
        for code in range(128):
            ch = chr(code)
            for item_op, item_av in av:
                if item_op is _k.NEGATE:
                    negate = True
                elif (
                    (item_op is _k.LITERAL and item_av == code)
                    or (item_op is _k.RANGE and item_av[0] <= code <= item_av[1])
                    or (item_op is _k.CATEGORY and _in_category(item_av, ch))
                ):
                    chars.add(ch)
                    break
        if negate:
            chars = {chr(c) for c in range(128)} - chars
    else:
        return set()
    if flags & re.IGNORECASE:
        chars |= {c.swapcase() for c in chars}
    return chars


def _in_category(category: Any, ch: str) -> bool:
    if category is _k.CATEGORY_DIGIT:
        return ch.isdigit()
    if category is _k.CATEGORY_WORD:
        return ch.isalnum() or ch == "_"
    if category is _k.CATEGORY_SPACE:
        return ch in " \t\n\r\f\v"
    return False


def _first_of_seq(data: Any, flags: int) -> tuple[frozenset[str] | None, bool]:
    """The characters the sequence can start with (``None``: too many or unknown), and
    whether it can match the empty string."""
    acc: set[str] = set()
    for op, av in data:
        chars, nullable = _first_of_item(op, av, flags)
        if chars is None:
            return None, _nullable_seq(data, flags)
        acc |= chars
        if not nullable:
            return frozenset(acc), False
    return frozenset(acc), True


def _nullable_seq(data: Any, flags: int) -> bool:
    return all(_first_of_item(op, av, flags)[1] for op, av in data)


def _first_of_item(op: Any, av: Any, flags: int) -> tuple[frozenset[str] | None, bool]:
    if op is _k.LITERAL:
        return (None if _caseless(chr(av), flags) else frozenset(chr(av))), False
    if op is _k.IN:
        return _charset(av, flags), False
    if op in _ZERO_WIDTH:
        return frozenset(), True
    if op is _k.SUBPATTERN:
        _group, add, remove, sub = av
        return _first_of_seq(sub.data, (flags | add) & ~remove)
    if op is _k.ATOMIC_GROUP:
        return _first_of_seq(av.data, flags)
    if op in _REPEATS:
        low, _high, sub = av
        chars, nullable = _first_of_seq(sub.data, flags)
        return chars, nullable or low == 0
    if op is _k.BRANCH:
        acc: set[str] = set()
        any_nullable = False
        unknown = False
        for alt in av[1]:
            chars, nullable = _first_of_seq(alt.data, flags)
            any_nullable = any_nullable or nullable
            if chars is None:
                unknown = True
            else:
                acc |= chars
        return (None if unknown else frozenset(acc)), any_nullable
    # ANY, NOT_LITERAL, group references, conditionals: anything may come first.
    return None, op in _BACKREFS


def _charset(items: Any, flags: int) -> frozenset[str] | None:
    chars: set[str] = set()
    for op, av in items:
        if op is _k.LITERAL:
            chars.add(chr(av))
        elif op is _k.RANGE:
            low, high = av
            if high - low >= MAX_FIRST:
                return None
            chars.update(chr(c) for c in range(low, high + 1))
        elif op is _k.CATEGORY and av is _k.CATEGORY_DIGIT:
            chars |= DIGITS
        else:  # NEGATE, other categories (\w, \s, …)
            return None
        if len(chars) > MAX_FIRST:
            return None
    if any(_caseless(c, flags) for c in chars):
        return None  # case-folding reaches beyond ASCII (k, the Kelvin sign): don't guess
    return frozenset(chars)


def _has_backrefs(data: Any) -> bool:
    for op, av in data:
        if op in _BACKREFS:
            return True
        subs: list[Any] = []
        if op is _k.SUBPATTERN:
            subs = [av[3]]
        elif op in _REPEATS:
            subs = [av[2]]
        elif op is _k.ATOMIC_GROUP:
            subs = [av]
        elif op in (_k.ASSERT, _k.ASSERT_NOT):
            subs = [av[1]]
        elif op is _k.BRANCH:
            subs = list(av[1])
        if any(_has_backrefs(sub.data) for sub in subs):
            return True
    return False
