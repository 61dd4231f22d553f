"""All the patterns of one config snapshot, compiled once into a few fast passes.

CPython's regex engine tries an alternation of N patterns at every position of the text:
10 KB against 100 patterns costs tens of milliseconds that way. It is fast only from a
literal, and ``str.find`` of one character (memchr) is faster still. So each pattern's
shape (``shapes``) decides how it is looked for:

* **keyed**: every match starts with a known literal (``sk-``, ``ACME-``) or with one
  of a few known characters (digits, ``+``). Each such pattern is keyed by its literal's
  rarest character (``-`` for ``ACME-``), and the patterns that share one are tried
  together, by one regex, wherever that character is: found with ``str.find`` while it
  is rare in the text, by the engine's own scan once it shows to be common. A leading
  ``(?<![0-9])`` that a group shares is checked first, so inside a number a digit key
  costs one comparison.
* **folded**: the same for patterns that ignore case, found in the casefolded text.
* **anchored**: a run of single characters, then a literal (``\\b[a-z0-9-]+\\.corp\\.com``):
  from each place the literal is, back over the run.
* **gated**: any other pattern with literals runs only on texts that contain them all.
* **general**: the rest, in one alternation over the whole text: the slow path.

A pattern starting with ``\\d`` is keyed on ASCII and full-width digits (0-9, ０-９):
digits of other scripts cannot start its match (they still match inside one).

A rule may instead bring its own ``finder`` (e-mail addresses are found from each ``@``);
like a pattern, it is asked again from where a hit that beat one of its own ends
(``10.0.0.1bob@x.com``: the address, then ``bob@x.com``).
Whatever the pass, the rule found at a position is the first in priority order (the
order of ``rules``) whose pattern matches there and whose ``accept`` check passes;
overlapping hits are resolved leftmost first, then by priority, as one alternation would.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from tollway.masking.shapes import MAX_FIRST, Lead, scoped, shape_of

Finder = Callable[[str, int], Iterable[tuple[int, int]]]
"""A rule's own search: the spans it finds in the text, in order, none overlapping, none
starting before the position given."""

# Characters too common in text to key on when a pattern may start with many of them.
_FREQUENT = frozenset("abcdefghijklmnopqrstuvwxyz \t\n")
# How common characters are in prose, most common first: a key is found by its rarest
# character, and keys that share that character share a pass. Upper case sits after the
# digits and any other character (punctuation, symbols, other scripts) after that.
_BY_COMMONNESS = " etaoinshrdlcumwfgypbvkjxqz\n.,0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_RARITY = {c: i for i, c in enumerate(_BY_COMMONNESS)}


def _marker(key: str) -> int:
    """The index of the key's rarest character (the first of equals)."""
    return max(range(len(key)), key=lambda i: _RARITY.get(key[i], len(_BY_COMMONNESS)))


@dataclass(frozen=True, slots=True)
class Rule:
    """One thing to look for: a pattern (with an optional check on the matched text,
    and the group that is the sensitive part), or a ``finder`` that yields spans itself."""

    pattern: re.Pattern[str] | None = None
    accept: Callable[[str], bool] | None = None
    group: int = 0
    finder: Finder | None = None


class Hit(NamedTuple):
    """A sensitive span of the text, and the index of the rule that found it. A tuple
    (made by the hundred per scan) whose order is the order of resolution: by start,
    then by priority."""

    start: int
    rule: int
    end: int


class ScanError(ValueError):
    """A pattern the scanner cannot use (it can match the empty string)."""


@dataclass(frozen=True, slots=True)
class _Pass:
    """Rules looked for together.

    A keyed pass's ``regex`` is ``KEY(?:(?<=(?=p1()|p2())…)|…)``: wherever its ``key``
    is (the literal its rules share, from the marker on), one look-behind per distance
    from a rule's start to the marker tries the rules there, farthest first so that the
    leftmost start wins; ``offsets`` holds each rule's distance. A folded pass's
    ``regex`` is the alternation ``p1()|p2()|…``, tried where ``seek`` finds the key in
    the casefolded text; other
    passes search their alternation over the whole text. ``slots`` maps a marker group's
    number to the rule's place in ``rules`` (empty: one rule, searched as written).
    ``behind`` holds a keyed pass's distances one by one (``(distance, pass)``), to find
    a later-starting match at a marker where an earlier-starting one was taken."""

    rules: tuple[int, ...]
    regex: re.Pattern[str]
    slots: dict[int, int]
    key: str = ""
    offsets: dict[int, int] | None = None
    seek: Callable[[str, int], int] | None = None
    lead: Lead | None = None
    lead_char: re.Pattern[str] | None = None
    behind: tuple[tuple[int, _Pass], ...] = ()


def _alternation(patterns: Sequence[re.Pattern[str]]) -> tuple[str, dict[int, int]]:
    """``p1()|p2()|…``: the empty group after each pattern tells which one matched (as
    ``lastindex``) without a group before it, which would stop the engine from
    rejecting an alternative by its first character."""
    parts: list[str] = []
    slots: dict[int, int] = {}
    number = 0
    for i, p in enumerate(patterns):
        number += p.groups + 1
        slots[number] = i
        parts.append(f"{scoped(p)}()")
    return "|".join(parts), slots


def _plain(rules: tuple[int, ...], patterns: Sequence[re.Pattern[str]]) -> _Pass:
    if len(patterns) == 1 and patterns[0].groups:
        return _Pass(rules, patterns[0], {})  # as written: its own group numbers
    body, slots = _alternation(patterns)
    return _Pass(rules, re.compile(body), slots)


def _keyed(key: str, members: Sequence[tuple[int, re.Pattern[str], int]], guard: frozenset[str]) -> _Pass:
    """``members``: (rule, pattern, distance from the pattern's start to ``key``), where
    ``key`` is the literal that every member has at its distance, marker first."""
    order: list[int] = []
    offsets: dict[int, int] = {}
    slots: dict[int, int] = {}
    behinds: list[str] = []
    each: list[tuple[int, _Pass]] = []
    number = 0
    for distance in sorted({d for _r, _p, d in members}, reverse=True):
        group = [(rule, pattern) for rule, pattern, d in members if d == distance]
        for rule, pattern in group:
            number += pattern.groups + 1
            slots[number] = len(order)
            order.append(rule)
            offsets[rule] = distance
        body, own_slots = _alternation([pattern for _r, pattern in group])
        behinds.append("(?<=(?=" + body + ")" + "(?s:.)" * (distance + len(key)) + ")")
        rules = tuple(rule for rule, _p in group)
        each.append((distance, _Pass(rules, re.compile(body), own_slots, offsets={r: distance for r in rules})))
    k = re.escape(key)
    # A leading (?<![…]) that every rule shares is checked on the character before the
    # marker first: inside a number, a digit key costs one comparison.
    fence = ""
    if guard and not any(offsets.values()):
        fence = "(?<![" + "".join(re.escape(c) for c in sorted(guard)) + "]" + k + ")"
    source = k + fence + "(?:" + "|".join(behinds) + ")"
    behind = tuple(each) if len(each) > 1 else ()
    return _Pass(tuple(order), re.compile(source), slots, key=key, offsets=offsets, behind=behind)


def _seeker(literal: str) -> Callable[[str, int], int]:
    """Where ``literal`` next occurs (-1: nowhere). ``str.find`` is the faster for one
    character (memchr) and for long literals (it skips by their length), the engine's
    literal search for the others."""
    if len(literal) == 1 or len(literal) >= 8:
        return lambda text, pos: text.find(literal, pos)
    search = re.compile(re.escape(literal)).search

    def seek(text: str, pos: int) -> int:
        m = search(text, pos)
        return -1 if m is None else m.start()

    return seek


def _common_prefix(keys: Iterable[str]) -> str:
    keys = list(keys)
    first, last = min(keys), max(keys)
    n = 0
    while n < len(first) and first[n] == last[n]:
        n += 1
    return first[:n]


class Scanner:
    """Finds every rule's hits in a text. Built once per config snapshot; read-only."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        keyed: dict[str, list[tuple[int, int, str]]] = {}  # marker → [(rule, distance, key from marker)]
        folded: dict[str, dict[int, str]] = {}
        guards: dict[int, frozenset[str]] = {}
        self._anchored: list[_Pass] = []
        self._gated: list[tuple[tuple[tuple[str, bool], ...], _Pass]] = []
        general: list[int] = []
        self._general: list[_Pass] = []
        self._finders: list[int] = []
        for i, rule in enumerate(self.rules):
            if rule.finder is not None:
                self._finders.append(i)
                continue
            pattern = rule.pattern
            assert pattern is not None
            shape = shape_of(pattern)
            if shape.nullable:
                raise ScanError(f"pattern {pattern.pattern!r} can match the empty string")
            guards[i] = shape.guard
            gate = tuple(lit for lit in shape.literals if len(lit[0]) >= 3)
            first = shape.first
            if shape.backrefs and gate:  # its group numbers must stay its own: alone, as written
                self._gated.append((gate, _plain((i,), [pattern])))
            elif shape.backrefs:
                self._general.append(_plain((i,), [pattern]))
            elif shape.prefix and not shape.folded:
                at = _marker(shape.prefix)
                keyed.setdefault(shape.prefix[at], []).append((i, at, shape.prefix[at:]))
            elif first and len(first) <= MAX_FIRST and (len(first) <= 2 or not first & _FREQUENT):
                for c in first:
                    keyed.setdefault(c, []).append((i, 0, c))
            elif shape.prefix:
                folded.setdefault(shape.prefix[0], {})[i] = shape.prefix
            elif shape.lead is not None:
                lead = shape.lead
                seek = _seeker(lead.literal)
                self._anchored.append(_Pass((i,), pattern, {}, seek=seek, lead=lead, lead_char=re.compile(lead.char)))
            elif gate:
                self._gated.append((gate, _plain((i,), [pattern])))
            else:
                general.append(i)
        self._keyed = [p for members in keyed.values() for p in self._build_keyed(members, guards)]
        self._folded = [p for m in folded.values() for p in self._build(tuple(sorted(m)), _common_prefix(m.values()))]
        self._general += self._build(tuple(general)) if general else []
        self.needs_casefold = (
            bool(self._folded)
            or any(p.lead is not None and p.lead.folded for p in self._anchored)
            or any(f for gate, _p in self._gated for _lit, f in gate)
        )

    def _build_keyed(self, members: list[tuple[int, int, str]], guards: dict[int, frozenset[str]]) -> list[_Pass]:
        """One keyed pass, or halves when the patterns cannot share one regex."""
        try:
            typed = [(i, p, at) for i, at, _tail in members if (p := self.rules[i].pattern) is not None]
            guard = frozenset.intersection(*(guards[i] for i, _at, _tail in members))
            return [_keyed(_common_prefix(tail for _i, _at, tail in members), typed, guard)]
        except (re.error, RecursionError):
            if len(members) > 1:  # clashing group names
                half = len(members) // 2
                return self._build_keyed(members[:half], guards) + self._build_keyed(members[half:], guards)
            pattern = self.rules[members[0][0]].pattern
            assert pattern is not None
            return [_plain((members[0][0],), [pattern])]  # cannot sit in a look-behind: as written

    def _build(self, order: tuple[int, ...], key: str = "") -> list[_Pass]:
        """One plain pass for ``order`` (folded when it has a ``key``), or halves when
        the patterns cannot share one regex."""
        patterns = [p for p in (self.rules[i].pattern for i in order) if p is not None]
        try:
            p = _plain(order, patterns)
            return [_Pass(order, p.regex, p.slots, key=key, seek=_seeker(key))] if key else [p]
        except (re.error, RecursionError):
            if len(order) == 1:
                raise
            half = len(order) // 2
            return self._build(order[:half], key) + self._build(order[half:], key)

    def scan(self, text: str) -> list[Hit]:
        """The non-overlapping hits in ``text``, in order: at each position, the first
        rule that matches there; after a hit, on from its end."""
        # Passes that try every candidate place list a hit at every start; passes that
        # search jump past their own hits, so they are asked again from where the
        # winning hit ends ("next hit at or after pos").
        listed: list[Hit] = []
        searched: list[Callable[[int], Hit | None]] = []
        for p in self._keyed:
            if p.offsets is not None:
                self._run_keyed(p, text, listed)
            else:
                searched.append(self._searcher(p, text))
        folded = text.casefold() if self.needs_casefold else text
        aligned = len(folded) == len(text)  # else positions differ: search the text itself
        for p in self._folded:
            if aligned:
                self._run_folded(p, text, folded, listed)
            else:
                searched.append(self._searcher(p, text))
        for p in self._anchored:
            assert p.lead is not None
            if p.lead.folded and not aligned:
                searched.append(self._searcher(p, text))
            else:
                searched.append(self._anchored_searcher(p, text, folded if p.lead.folded else text))
        for gate, p in self._gated:
            if all(lit in (folded if f else text) for lit, f in gate):
                searched.append(self._searcher(p, text))
        for p in self._general:
            searched.append(self._searcher(p, text))
        for i in self._finders:
            finder = self.rules[i].finder
            assert finder is not None
            listed.extend(Hit(s, i, e) for s, e in finder(text, 0))
        listed.sort()
        heads = [(head, next_hit) for next_hit in searched if (head := next_hit(0)) is not None]
        chosen: list[Hit] = []
        pos = 0
        if not heads:  # the usual case: every hit is listed
            i = 0
            while i < len(listed):
                hit = listed[i]
                i += 1
                if hit.start >= pos:
                    chosen.append(hit)
                    pos = hit.end
                elif hit.end > pos:
                    self._found_again(hit, text, pos, listed, i)
            return chosen
        i = 0
        while True:
            while i < len(listed) and listed[i].start < pos:
                if listed[i].end > pos:
                    self._found_again(listed[i], text, pos, listed, i + 1)
                i += 1
            best = listed[i] if i < len(listed) else None
            live = []
            for head, next_hit in heads:
                if head.start < pos:  # its hit lost to another: its next one from here
                    found = next_hit(pos)
                    if found is None:
                        continue
                    head = found
                live.append((head, next_hit))
                if best is None or head < best:
                    best = head
            heads = live
            if best is None:
                return chosen
            chosen.append(best)
            pos = best.end

    def _found_again(self, lost: Hit, text: str, pos: int, listed: list[Hit], after: int) -> None:
        """A finder's hit lost to one that ends inside it: the finder's first hit from
        there joins the list (a pattern's would be listed already, at its own start)."""
        finder = self.rules[lost.rule].finder
        if finder is not None:
            for start, end in finder(text, pos):
                bisect.insort(listed, Hit(start, lost.rule, end), lo=after)
                return

    def _searcher(self, p: _Pass, text: str) -> Callable[[int], Hit | None]:
        search = p.regex.search

        def next_hit(pos: int) -> Hit | None:
            while (m := search(text, pos)) is not None:
                hit = self._hit_at(p, text, m.start(), m)
                if hit is not None:
                    return hit
                pos = m.start() + 1
            return None

        return next_hit

    def _run_keyed(self, p: _Pass, text: str, hits: list[Hit]) -> None:
        """A hit at every place of the marker where a rule matches. Where the marker is
        rare, str.find jumps from one to the next; once it shows to be common in this
        text, the engine's own scan takes the rest."""
        key = p.key
        char = key[0]
        whole = len(key) == 1
        find = text.find
        match = p.regex.match
        q = find(char)
        budget = 8 + (len(text) >> 11)
        while q >= 0:
            budget -= 1
            if budget < 0:
                search = p.regex.search
                while (m := search(text, q)) is not None:
                    q = m.start()
                    self._keyed_hits(p, text, q, m, hits)
                    q += 1
                return
            if (whole or text.startswith(key, q)) and (m := match(text, q)) is not None:
                self._keyed_hits(p, text, q, m, hits)
            q = find(char, q + 1)

    def _keyed_hits(self, p: _Pass, text: str, q: int, m: re.Match[str], hits: list[Hit]) -> None:
        hit = self._hit_at(p, text, q, m)
        if hit is None:
            return
        hits.append(hit)
        if not p.behind:
            return
        assert p.offsets is not None
        taken = p.offsets[hit.rule]
        for distance, sub in p.behind:  # later starts at this marker: wanted if the first loses
            if distance >= taken or q < distance:
                continue
            found = sub.regex.match(text, q - distance)
            if found is not None and (later := self._hit_at(sub, text, q, found)) is not None:
                hits.append(later)
                taken = distance

    def _run_folded(self, p: _Pass, text: str, folded: str, hits: list[Hit]) -> None:
        assert p.seek is not None
        seek = p.seek
        match = p.regex.match
        pos = 0
        while (start := seek(folded, pos)) >= 0:
            m = match(text, start)
            if m is not None and (hit := self._hit_at(p, text, start, m)) is not None:
                hits.append(hit)
            pos = start + 1

    def _anchored_searcher(self, p: _Pass, text: str, haystack: str) -> Callable[[int], Hit | None]:
        """From each place the literal is, back over the run of characters that may come
        before it; the leftmost place in that run where the pattern matches wins."""
        assert p.seek is not None and p.lead is not None and p.lead_char is not None
        seek = p.seek
        in_run = p.lead_char.match
        match = p.regex.match
        least = p.lead.min_width

        def next_hit(pos: int) -> Hit | None:
            floor = pos
            while (i := seek(haystack, pos + least)) >= 0:
                start = i
                while start > floor and in_run(text, start - 1):
                    start -= 1
                for s in range(start, i - least + 1):
                    m = match(text, s)
                    if m is not None and (hit := self._hit_at(p, text, s, m)) is not None:
                        return hit
                pos = i - least + 1
            return None

        return next_hit

    def _hit_at(self, p: _Pass, text: str, at: int, m: re.Match[str]) -> Hit | None:
        """The first rule of ``p`` that truly matches, or ``None``.

        ``m`` is the pass's own match at ``at``: its marker group names the rule and ends
        where the rule's match ends, so the common case needs no second match. When that
        rule's check fails, the rules after it are tried one by one. A keyed pass's rule
        starts its own distance before ``at``."""
        offsets = p.offsets or {}
        if not p.slots:  # one rule, searched as written: m is its match
            return self._hit(p.rules[0], text, m.start(), m.end())
        marker = m.lastindex or 0
        first = p.slots[marker]
        i = p.rules[first]
        start = at - offsets.get(i, 0)
        end = m.start(marker)
        rule = self.rules[i]
        if rule.accept is None and not rule.group and end > start:
            return Hit(start, i, end)
        hit = self._hit(i, text, start, end)
        if hit is not None:
            return hit
        for i in p.rules[first + 1 :]:
            pattern = self.rules[i].pattern
            start = at - offsets.get(i, 0)
            found = pattern.match(text, start) if pattern is not None and start >= 0 else None
            if found is not None and (hit := self._hit(i, text, start, found.end())) is not None:
                return hit
        return None

    def _hit(self, i: int, text: str, start: int, end: int) -> Hit | None:
        rule = self.rules[i]
        if end <= start or (rule.accept is not None and not rule.accept(text[start:end])):
            return None
        if rule.group:
            assert rule.pattern is not None
            found = rule.pattern.match(text, start)
            if found is None or found.start(rule.group) < 0:
                return None
            start, end = found.span(rule.group)
        return Hit(start, i, end)
