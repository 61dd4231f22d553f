"""Model-name patterns, shared by modelMapping, model_providers and allow_models.

Resolution is deterministic (Higress iterates a Go map, which is not): an exact name
first, then the longest ``prefix*``, then ``~regex`` rules in declared order (``$1``
substitutes a capture in the value), then ``*``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

# The ``regex`` module rather than ``re``: the model name is the client's, and a pattern
# that backtracks (``~(a+)+``, in a runtime consumer's allow_models or a config's
# mapping) would spend minutes on a name of thirty characters, with the event loop (every
# call, the admin API) stopped meanwhile. ``regex`` matches the same syntax and stops
# a match at a time limit, which ``re`` cannot.
import regex

log = logging.getLogger("tollway.patterns")

# The longest one ``~regex`` may take against one name; past it the name does not match
# (said in the log). A model pattern takes microseconds.
MATCH_TIMEOUT_S = 0.005
# Patterns compiled, and (pattern, name) answers remembered, at most (the names come from
# clients): past it the memo starts again.
_MEMO_LIMIT = 8192
_compiled: dict[str, Any] = {}
_answers: dict[tuple[str, str], bool] = {}
_said_at = 0.0


def compile_pattern(source: str) -> Any:
    """A ``~regex`` pattern's expression (without the ``~``), compiled, or ``regex.error``."""
    found = _compiled.get(source)
    if found is None:
        if len(_compiled) >= _MEMO_LIMIT:
            _compiled.clear()
        found = _compiled[source] = regex.compile(source, regex.V0)
    return found


def fullmatch(compiled: Any, name: str) -> Any:
    """``compiled``'s match of the whole of ``name``, or None, within ``MATCH_TIMEOUT_S``
    (a match that takes longer is none)."""
    try:
        return compiled.fullmatch(name, timeout=MATCH_TIMEOUT_S)
    except TimeoutError:
        global _said_at
        now = time.monotonic()
        if now - _said_at > 60:  # once a minute: a client could ask for it on every call
            _said_at = now
            log.warning(
                "model pattern ~%s took over %.0f ms against a %d-character model name and was taken as "
                "no match; it backtracks: write it without nested or overlapping repetition",
                compiled.pattern, MATCH_TIMEOUT_S * 1000, len(name),
            )  # fmt: skip
        return None


def check(pattern: str) -> None:
    """Raises ``ValueError`` naming a ``~regex`` pattern that does not compile (config
    validation: a pattern must never fail when a call is matched against it)."""
    if pattern.startswith("~"):
        try:
            compile_pattern(pattern[1:])
        except regex.error as exc:
            raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None


def matches(pattern: str, name: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("~"):
        key = (pattern, name)
        answer = _answers.get(key)
        if answer is None:
            if len(_answers) >= _MEMO_LIMIT:
                _answers.clear()
            answer = _answers[key] = fullmatch(compile_pattern(pattern[1:]), name) is not None
        return answer
    if pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    return pattern == name


def matches_any(patterns: Iterable[str], name: str) -> bool:
    return any(matches(p, name) for p in patterns)


class PatternMap:
    """An ordered pattern → value table, compiled once per config snapshot."""

    __slots__ = ("_cache", "_exact", "_fallback", "_prefixes", "_regexes")

    def __init__(self, table: Mapping[str, str]) -> None:
        self._exact: dict[str, str] = {}
        prefixes: list[tuple[str, str]] = []
        self._regexes: list[tuple[Any, str]] = []
        self._fallback: str | None = None
        for key, value in table.items():
            if key == "*":
                self._fallback = value
            elif key.startswith("~"):
                self._regexes.append((compile_pattern(key[1:]), value))
            elif key.endswith("*"):
                prefixes.append((key[:-1], value))
            else:
                self._exact[key] = value
        self._prefixes = sorted(prefixes, key=lambda kv: len(kv[0]), reverse=True)
        self._cache: dict[str, str | None] = {}

    def lookup(self, name: str) -> str | None:
        """The value for ``name`` (with ``$n`` substituted for regex rules), or ``None``."""
        hit = self._cache.get(name, self)
        if hit is not self:
            return hit  # type: ignore[return-value]
        value = self._resolve(name)
        if len(self._cache) < 4096:  # names come from clients: bound the memo
            self._cache[name] = value
        return value

    def _resolve(self, name: str) -> str | None:
        if name in self._exact:
            return self._exact[name]
        for prefix, value in self._prefixes:
            if name.startswith(prefix):
                return value
        for rx, value in self._regexes:
            m = fullmatch(rx, name)
            if m is not None:
                expanded: str = m.expand(re.sub(r"\$(\d+)", r"\\\1", value))
                return expanded
        return self._fallback

    def all_values(self, name: str) -> list[str]:
        """The value of every rule ``name`` matches, in the order ``lookup`` tries them
        (exact, longest prefix first, regexes, ``*``), each value once."""
        found: list[str] = []
        if name in self._exact:
            found.append(self._exact[name])
        found += [value for prefix, value in self._prefixes if name.startswith(prefix)]
        for rx, value in self._regexes:
            m = fullmatch(rx, name)
            if m is not None:
                found.append(m.expand(re.sub(r"\$(\d+)", r"\\\1", value)))
        if self._fallback is not None:
            found.append(self._fallback)
        return list(dict.fromkeys(found))

    def names(self) -> list[str]:
        """The non-wildcard keys: models a route can list even if the provider cannot."""
        return list(self._exact)
