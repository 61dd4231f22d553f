"""Model-name patterns, shared by modelMapping, model_providers and allow_models.

Resolution is deterministic (Higress iterates a Go map, which is not): an exact name
first, then the longest ``prefix*``, then ``~regex`` rules in declared order (``$1``
substitutes a capture in the value), then ``*``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping


def check(pattern: str) -> None:
    """Raises ``ValueError`` naming a ``~regex`` pattern that does not compile (config
    validation: a pattern must never fail when a call is matched against it)."""
    if pattern.startswith("~"):
        try:
            re.compile(pattern[1:])
        except re.error as exc:
            raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None


def matches(pattern: str, name: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("~"):
        return re.fullmatch(pattern[1:], name) is not None
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
        self._regexes: list[tuple[re.Pattern[str], str]] = []
        self._fallback: str | None = None
        for key, value in table.items():
            if key == "*":
                self._fallback = value
            elif key.startswith("~"):
                self._regexes.append((re.compile(key[1:]), value))
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
            m = rx.fullmatch(name)
            if m is not None:
                return m.expand(re.sub(r"\$(\d+)", r"\\\1", value))
        return self._fallback

    def all_values(self, name: str) -> list[str]:
        """The value of every rule ``name`` matches, in the order ``lookup`` tries them
        (exact, longest prefix first, regexes, ``*``), each value once."""
        found: list[str] = []
        if name in self._exact:
            found.append(self._exact[name])
        found += [value for prefix, value in self._prefixes if name.startswith(prefix)]
        for rx, value in self._regexes:
            m = rx.fullmatch(name)
            if m is not None:
                found.append(m.expand(re.sub(r"\$(\d+)", r"\\\1", value)))
        if self._fallback is not None:
            found.append(self._fallback)
        return list(dict.fromkeys(found))

    def names(self) -> list[str]:
        """The non-wildcard keys: models a route can list even if the provider cannot."""
        return list(self._exact)
