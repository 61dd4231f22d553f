"""Claude's thinking blocks as the pivot carries them, and as a Responses client keeps them.

Anthropic requires an assistant turn's thinking blocks back, unmodified and signed,
when a conversation with thinking goes on after a tool call. The pivot carries them on
the assistant message (or a stream delta) as ``thinking_blocks``, the field LiteLLM
shows OpenAI clients for the same purpose, in their order, beside the text
``reasoning_content`` already gives::

    {"type": "thinking", "thinking": str, "signature": str}
    {"type": "redacted_thinking", "data": str}

A Responses client has no such field: it gets the blocks sealed in a reasoning item's
``encrypted_content`` (``seal``), an opaque string a client that keeps no server-side
state sends back as it got it, and ``unseal`` reads them back from it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeGuard

import orjson

from tollway.protocols.codec import Json, TranslationError

FIELD = "thinking_blocks"
# What starts a sealed ``encrypted_content``: the gateway's own, and its version.
_SEAL = "tollway.thinking.v1."
# Each block kind and the string fields that make it whole.
_FIELDS = {"thinking": ("thinking", "signature"), "redacted_thinking": ("data",)}


def block(native: Any) -> Json | None:
    """An Anthropic content block as a pivot thinking block: exactly its type and the
    fields that make it whole; None when it is not a whole thinking block."""
    kind = native.get("type") if isinstance(native, dict) else None
    fields = _FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None or not all(isinstance(native.get(f), str) for f in fields):
        return None
    return {"type": kind, **{f: native[f] for f in fields}}


def of_answer(message: Json) -> list[Json]:
    """The whole thinking blocks of a pivot answer's message or delta (a provider's
    answer is not refused for a malformed one: it is left out)."""
    given = message.get(FIELD)
    blocks = map(block, given) if isinstance(given, list) else ()
    return [b for b in blocks if b is not None]


def of_message(message: Json, where: str) -> list[Json]:
    """The ``thinking_blocks`` of a pivot assistant message (none: an empty list), each
    as given; ``TranslationError`` when they are not whole thinking blocks."""
    given = message.get(FIELD)
    if given is None:
        return []
    if not isinstance(given, list):
        raise TranslationError(f"{where}.{FIELD} must be a list of thinking blocks")
    out = []
    for i, item in enumerate(given):
        whole = block(item)
        if whole is None:
            raise TranslationError(
                f"{where}.{FIELD}[{i}] must be {{type: thinking, thinking, signature}} or "
                "{type: redacted_thinking, data}, as the answer gave it"
            )
        out.append(whole)
    return out


def seal(blocks: list[Json]) -> str:
    """The blocks as one opaque string (see the module)."""
    return _SEAL + base64.urlsafe_b64encode(orjson.dumps(blocks)).decode()


def is_sealed(text: Any) -> TypeGuard[str]:
    return isinstance(text, str) and text.startswith(_SEAL)


def unseal(text: str, where: str) -> list[Json]:
    """The blocks ``seal`` made ``text`` of; ``TranslationError`` when it is not one
    (the caller checks ``is_sealed`` first)."""
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(text.removeprefix(_SEAL)))
    except (binascii.Error, ValueError):
        decoded = None
    blocks = [block(b) for b in decoded] if isinstance(decoded, list) else [None]
    if not blocks or any(b is None for b in blocks):
        raise TranslationError(f"{where}.encrypted_content is damaged: send it back as the response gave it")
    return [b for b in blocks if b is not None]
