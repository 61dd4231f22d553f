"""Higress's user rules, compiled: ``replace_roles`` regexes (with grok names) and their
replacement values, and ``deny_words``.

Regexes follow Higress (Rust ``fancy_regex`` plus grok): ``%{NAME}`` and
``%{NAME:alias}`` expand to the named grok pattern (``alias`` becomes a named group), and
``(?<name>…)`` is read as ``(?P<name>…)``. A replacement ``value`` refers to groups as in
Rust: ``$1``, ``$name``, ``${name}``, and ``$$`` for a dollar sign.

Deny words match case-insensitively, in a text as sent, in its normalised form
(``normalise``: fullwidth letters, zero-width characters and soft hyphens are no way
around them) and in that with Latin lookalikes folded (``lookalikes``: nor are Cyrillic
or Greek letters drawn like Latin ones, or other dashes); a word that begins or ends
with an ASCII letter or digit must stand alone there (``pass`` does not match
``password``), other words match anywhere (Chinese text has no spaces between words).
Higress tokenises the text instead, so its deny words must be single words; here
phrases work too, a run of whitespace in one matching any run of whitespace
(``normalise.one_space``). Combining marks stay part of their letters, as in
the normal form: stripping them would make distinct words of many languages one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from tollway.masking.normalise import normalise, one_space

_GROK = re.compile(r"%\{(\w+)(?::(\w+))?\}")
_RUST_NAMED_GROUP = re.compile(r"(?<!\\)\(\?<(?=[A-Za-z_])")
_DOLLAR = re.compile(r"\$(?:(\$)|\{(\w+)\}|(\w+))")

_IPV4 = (
    r"(?<![0-9])(?:(?:[0-1]?[0-9]{1,2}|2[0-4][0-9]|25[0-5])[.]){3}"
    r"(?:[0-1]?[0-9]{1,2}|2[0-4][0-9]|25[0-5])(?![0-9])"
)
_H4 = r"[0-9A-Fa-f]{1,4}"
_IPV6 = (
    rf"(?:(?:{_H4}:){{7}}{_H4}|(?:{_H4}:){{1,7}}:|(?:{_H4}:){{1,6}}:{_H4}|(?:{_H4}:){{1,5}}(?::{_H4}){{1,2}}"
    rf"|(?:{_H4}:){{1,4}}(?::{_H4}){{1,3}}|(?:{_H4}:){{1,3}}(?::{_H4}){{1,4}}|(?:{_H4}:){{1,2}}(?::{_H4}){{1,5}}"
    rf"|{_H4}:(?::{_H4}){{1,6}}|:(?:(?::{_H4}){{1,7}}|:))"
)
_HOSTNAME = r"\b(?:[0-9A-Za-z][0-9A-Za-z-]{0,62})(?:\.(?:[0-9A-Za-z][0-9A-Za-z-]{0,62}))*(?:\.?|\b)"
_EMAILLOCALPART = r"[a-zA-Z0-9!#$%&'*+\-/=?^_`{|}~]{1,64}(?:\.[a-zA-Z0-9!#$%&'*+\-/=?^_`{|}~]{1,62}){0,63}"

GROK_PATTERNS: dict[str, str] = {
    # Higress's own two, as Higress defines them.
    "MOBILE": r"\d{8,11}",
    "IDCARD": r"\d{17}[0-9xX]|\d{15}",
    # The common logstash grok names.
    "IPV4": _IPV4,
    "IPV6": _IPV6,
    "IP": rf"{_IPV6}|{_IPV4}",
    "HOSTNAME": _HOSTNAME,
    "IPORHOST": rf"{_IPV6}|{_IPV4}|{_HOSTNAME}",
    "EMAILLOCALPART": _EMAILLOCALPART,
    "EMAILADDRESS": rf"{_EMAILLOCALPART}@{_HOSTNAME}",
    "USERNAME": r"[a-zA-Z0-9._-]+",
    "USER": r"[a-zA-Z0-9._-]+",
    "INT": r"[+-]?[0-9]+",
    "POSINT": r"\b[1-9][0-9]*\b",
    "NONNEGINT": r"\b[0-9]+\b",
    "NUMBER": r"[+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)",
    "BASE10NUM": r"[+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)",
    "BASE16NUM": r"(?<![0-9A-Fa-f])(?:[+-]?(?:0x)?[0-9A-Fa-f]+)",
    "WORD": r"\b\w+\b",
    "NOTSPACE": r"\S+",
    "SPACE": r"\s*",
    "DATA": r".*?",
    "GREEDYDATA": r".*",
    "UUID": r"[A-Fa-f0-9]{8}-(?:[A-Fa-f0-9]{4}-){3}[A-Fa-f0-9]{12}",
    "MAC": r"(?:[A-Fa-f0-9]{2}[:-]){5}[A-Fa-f0-9]{2}|(?:[A-Fa-f0-9]{4}\.){2}[A-Fa-f0-9]{4}",
}


class RuleError(ValueError):
    """A user rule that cannot be compiled; the message names what is wrong."""


def expand_grok(source: str) -> str:
    def sub(m: re.Match[str]) -> str:
        name, alias = m.group(1), m.group(2)
        body = GROK_PATTERNS.get(name)
        if body is None:
            raise RuleError(f"unknown grok pattern %{{{name}}}; known: {', '.join(sorted(GROK_PATTERNS))}")
        return f"(?P<{alias}>{body})" if alias else f"(?:{body})"

    return _GROK.sub(sub, source)


def compile_user_regex(source: str) -> re.Pattern[str]:
    """A ``replace_roles`` regex as Higress reads it, compiled for Python."""
    expanded = _RUST_NAMED_GROUP.sub("(?P<", expand_grok(source))
    try:
        return re.compile(expanded)
    except re.error as exc:
        raise RuleError(f"{source!r} is not a valid regular expression: {exc}") from None


def check_value(value: str, pattern: re.Pattern[str]) -> None:
    """Every group a replacement value names must exist in its regex."""
    for m in _DOLLAR.finditer(value):
        name = m.group(2) or m.group(3)
        if name is None:
            continue
        if name.isdigit():
            if int(name) > pattern.groups:
                raise RuleError(f"value refers to group ${name}, but the regex has {pattern.groups} groups")
        elif name not in pattern.groupindex:
            raise RuleError(f"value refers to group ${name}, which the regex does not define")


def expand_value(value: str, match: re.Match[str]) -> str:
    """``value`` with ``$1`` / ``$name`` / ``${name}`` replaced from ``match``."""
    if "$" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(3)
        got = match.group(int(name) if name.isdigit() else name)
        return got or ""

    return _DOLLAR.sub(sub, value)


def hash_value(original: str) -> str:
    """Higress's ``type: hash``: the MD5 hex digest of the matched text (a pseudonym,
    not a protection: the same value always gives the same digest)."""
    return hashlib.md5(original.encode(), usedforsecurity=False).hexdigest()


class DenyWords:
    """A fixed list of words; ``first_in(text)`` names the first that occurs in it."""

    def __init__(self, words: Sequence[str]) -> None:
        self.words: list[tuple[str, bool, bool]] = []  # (folded word, edge before, edge after)
        for word in words:
            # As written, and normalised as the texts' forms are (see ``masker``); its
            # runs of whitespace one space, as the texts are also looked at.
            for variant in dict.fromkeys(one_space(w.casefold()) for w in (word.strip(), normalise(word.strip()))):
                if variant:
                    self.words.append((variant, _alnum(variant[0]), _alnum(variant[-1])))
        self._spaced = any(" " in word for word, _b, _a in self.words)

    def __bool__(self) -> bool:
        return bool(self.words)

    def first_in(self, text: str) -> str | None:
        folded = text.casefold()
        found = self._first_in(folded)
        if found is None and self._spaced and (spaced := one_space(folded)) is not folded:
            found = self._first_in(spaced)  # a phrase across a line break, a tab, two spaces
        return found

    def _first_in(self, folded: str) -> str | None:
        for word, edge_before, edge_after in self.words:
            i = folded.find(word)
            while i >= 0:
                j = i + len(word)
                if not (edge_before and i > 0 and _alnum(folded[i - 1])) and not (
                    edge_after and j < len(folded) and _alnum(folded[j])
                ):
                    return word
                i = folded.find(word, i + 1)
        return None


def _alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


# Tollway's `system_deny` list: key material that must never reach a model. (Higress
# ships a Chinese sensitive-word dictionary here; Tollway does not.)
SYSTEM_DENY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
