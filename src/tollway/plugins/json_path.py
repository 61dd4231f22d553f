"""A small subset of gjson paths, for ai-statistics attributes read from JSON bodies.

    choices.0.message.content     keys and list indexes, separated by dots
    usage.prompt_tokens_details   missing anywhere on the way → no value
    choices.#                     the length of a list
    choices.#.delta.content       the rest of the path, for every element of a list
    a\\.b                          a literal dot inside a key
    messages.@reverse.0.content   the modifier @reverse: a list's elements (an object's
                                  keys) in reverse order; other values as they are

Higress writes its paths in gjson; these are the forms its docs and examples use
(``messages.@reverse.0.content``, the last message). Other modifiers, queries
(``#(…)``) and wildcards are not supported: a path that uses them is an error when the
config is loaded, not a silent miss.
"""

from __future__ import annotations

from typing import Any

MISSING: Any = object()
_UNSUPPORTED = ("*", "?", "|", "#(")


class _Modifier(str):
    """A path part that is a gjson modifier, not a key (``\\@reverse`` is a key)."""

    __slots__ = ()


REVERSE = _Modifier("@reverse")
_MODIFIERS = {"@reverse": REVERSE}


class PathError(ValueError):
    """A path this getter cannot evaluate."""


def parse(path: str) -> tuple[str, ...]:
    """Split ``path`` into its parts; raises ``PathError`` for gjson features not supported."""
    if not path:
        raise PathError("empty path")
    for token in _UNSUPPORTED:
        if token in path.replace("\\" + token[0], ""):
            raise PathError(f"gjson {token!r} is not supported in {path!r}")
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    starts_escaped = False  # the part's first character was escaped: never a modifier

    def end_part() -> None:
        part = "".join(current)
        if part.startswith("@") and not starts_escaped:
            if part not in _MODIFIERS:
                raise PathError(f"gjson modifier {part!r} is not supported in {path!r} (only @reverse is)")
            part = _MODIFIERS[part]
        parts.append(part)

    for ch in path:
        if escaped:
            starts_escaped = starts_escaped or not current
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ".":
            end_part()
            current = []
            starts_escaped = False
        else:
            current.append(ch)
    end_part()
    if any(p == "" for p in parts):
        raise PathError(f"empty key in {path!r}")
    return tuple(parts)


def get(obj: Any, parts: tuple[str, ...]) -> Any:
    """The value at ``parts`` (from ``parse``) in decoded JSON, or ``MISSING``."""
    for i, part in enumerate(parts):
        if part is REVERSE:
            if isinstance(obj, list):
                obj = obj[::-1]
            elif isinstance(obj, dict):
                obj = dict(reversed(obj.items()))
            continue
        if isinstance(obj, dict):
            if part not in obj:
                return MISSING
            obj = obj[part]
        elif isinstance(obj, list):
            if part == "#":
                rest = parts[i + 1 :]
                if not rest:
                    return len(obj)
                values = [get(item, rest) for item in obj]
                return [v for v in values if v is not MISSING]
            if not part.isdigit():
                return MISSING
            index = int(part)
            if index >= len(obj):
                return MISSING
            obj = obj[index]
        else:
            return MISSING
    return obj
