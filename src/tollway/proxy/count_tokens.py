"""``POST /v1/messages/count_tokens`` for a provider that cannot count (SPEC §9).

An Anthropic provider answers it natively (the call passes through). Any other provider
has no such endpoint, so the gateway answers ``{"input_tokens": N}`` itself, from the
same estimate it bills unfinished calls by (about four characters a token) over the text
the request would send: the system prompt, the messages and the tools. The answer says
it is an estimate (``x-tollway-estimate: true``); the call is recorded, costing nothing.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.exchange import Exchange, Reply
from tollway.protocols.usage import estimate_tokens

ESTIMATE_HEADER = ("x-tollway-estimate", "true")
# The parts of a Messages request whose text a model reads.
_COUNTED = ("system", "messages", "tools")


# Fields that label the text rather than carry it.
_LABELS = frozenset({"role", "type", "id", "tool_use_id", "cache_control", "media_type"})


def _text_chars(value: Any) -> int:
    """Characters of every string in ``value`` but labels (object keys, roles, types,
    ids): an explicit stack, as bodies are bounded in depth but not in breadth."""
    chars = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            chars += len(item)
        elif isinstance(item, dict):
            stack.extend(v for k, v in item.items() if k not in _LABELS)
        elif isinstance(item, list):
            stack.extend(item)
    return chars


def estimated_answer(ex: Exchange, body: dict[str, Any]) -> Reply:
    tokens = estimate_tokens(sum(_text_chars(body.get(part)) for part in _COUNTED))
    answer = orjson.dumps({"input_tokens": tokens})
    return Reply(200, [("content-type", "application/json"), ESTIMATE_HEADER], answer)
