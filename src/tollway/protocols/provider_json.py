"""JSON as providers write it, read as JSON allows.

orjson refuses a string escape that is half a surrogate pair (``"\\ud83d"`` with no low
half after it), which RFC 8259 §8.2 lets a JSON text hold, and which a model's answer
cut in the middle of an emoji does hold (the output limit reached between the two
halves). A client's body is refused for it (one meaning to every reader); a provider's
answer must still be read: its tokens were paid for. ``loads`` reads it with each lone
half as U+FFFD, as a lenient decoder shows it. The bytes relayed are not changed.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

# A \uD800–\uDFFF escape that is not half of a pair: a high half not followed by a low
# one, or a low half not preceded by a high one; its backslash not itself escaped (an
# even run of backslashes before it).
_LONE_SURROGATE = re.compile(
    rb"(?<!\\)((?:\\\\)*)"
    rb"(?:\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2})"
)


def loads(data: bytes | str) -> Any:
    """``data`` parsed; raises ``orjson.JSONDecodeError`` for what is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raw = data.encode() if isinstance(data, str) else data
        if b"\\u" not in raw:
            raise
        repaired = _LONE_SURROGATE.sub(rb"\1\\ufffd", raw)
        if repaired == raw:
            raise
        return orjson.loads(repaired)
