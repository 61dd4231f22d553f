"""JSON string escapes in text that is itself JSON, or was: what a model reads of them.

A tool call's ``arguments``, a tool's result and a Responses ``function_call_output``
are JSON inside a JSON string. Their own escapes (``\\u673a``, ``gina\\u0040example.com``)
are still escapes once the body is parsed, and the model decodes them as it reads the
JSON; Python's ``json.dumps`` writes every non-ASCII character that way, so a client's
Chinese tool result always arrives escaped. request-block and ai-data-masking read such
text as the model will (a judge's High: deny words, e-mail addresses and keys passed
both plugins inside tool arguments).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

# How many levels of JSON inside JSON strings are read (each level a string in the one
# above): beyond it the text is read as it stands.
MAX_INNER = 3

_JSON_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|(.))", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def unescape(text: str) -> str:
    """JSON string escapes decoded wherever they stand (a reader need not parse the text
    to read them: a lenient one, or a model)."""

    def one(m: re.Match[str]) -> str:
        code, char = m.group(1), m.group(2)
        if code is not None:
            return chr(int(code, 16))
        return _SIMPLE_ESCAPES.get(char, char)

    decoded = _JSON_ESCAPE.sub(one, text)
    # \ud83d\ude00 came out as two halves of a surrogate pair: join them.
    return decoded.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def unescaped_levels(text: str) -> Iterator[str]:
    """``text``, then its escapes decoded, again, up to ``MAX_INNER`` times while any
    backslash is left."""
    yield text
    for _ in range(MAX_INNER):
        if "\\" not in text:
            return
        decoded = unescape(text)
        if decoded == text:
            return
        yield decoded
        text = decoded


def inner_json(text: str) -> Any:
    """The object or array a string holds as JSON text, else None: read value by value,
    as the model reads it (its escapes decoded, its numbers as numbers: the standard
    library's reader, which keeps integers of any width where orjson makes floats)."""
    head = text.lstrip()[:1]
    if head != "{" and head != "[":
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict | list) else None


def dump_inner_json(value: Any) -> str:
    """``value`` written back as JSON text (characters as they are, not escaped)."""
    return json.dumps(value, ensure_ascii=False)


__all__ = ["MAX_INNER", "dump_inner_json", "inner_json", "unescape", "unescaped_levels"]
