"""A JSON list a provider's answer is meant to hold, read defensively: a provider that
sends a number, a string or an object where a list belongs (a fuzzer found several ways)
must not raise out of a translation, an estimate or a usage read."""

from __future__ import annotations

from typing import Any


def members(obj: Any, key: str) -> list[Any]:
    """``obj[key]`` when ``obj`` is a JSON object and that is a list, else an empty list."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if type(value) is list else []


__all__ = ["members"]
