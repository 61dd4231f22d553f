"""What a request is, to the cache: its key, its partition, and the text to embed.

The key is a hash of the request reduced to what changes the answer (made once per
request, one serialisation and one hash):

- ``request`` (the default): the whole body as the model sees it: the body the provider
  would get (a plugin's rewrite of it included), its ``model`` the model after the
  route's provider maps it, less the fields that only say how to deliver the answer or
  label the call (``stream``, ``stream_options``, ``user``, ``metadata``, …; not
  ``store``, which says what the provider keeps). Every other
  field (messages or input, system and instructions, tools, sampling parameters, output
  limits) is part of it, whatever its name, so a field this list does not know keeps
  requests apart rather than mixing them up.
- ``lastQuestion``: the model after mapping and the text of the last user message;
  ``allQuestions``: the model and every user message's text, joined by newlines.

Every key also holds the API (chat, messages, responses: an entry answers in the shape
it was stored in) and the scope (who may share it: ``scope.py``).

The semantic cache embeds the question (the last user message's text; all of them for
``allQuestions``) and compares it only with prompts stored under the same *partition*:
the scope, the API, the model and, for ``request``, the rest of the request (the body
with that question's text taken out, the other parts of its message kept), so a
paraphrased question matches only where everything else the model sees is the same.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import orjson

KeyStrategy = Literal["request", "lastQuestion", "allQuestions", "disabled"]

# Fields that say how the answer is delivered or how the call is labelled, not what the
# model answers: never part of a key. (Not ``store``: a response the provider keeps, and
# serves again by its id, is not one it forgot; a hit must not hand out an id that was
# never stored.)
_DELIVERY = frozenset(
    {"stream", "stream_options", "user", "metadata", "service_tier", "prompt_cache_key", "safety_identifier"}
)
_QUESTION = "\x00question"


# Not frozen: a frozen dataclass sets each field through object.__setattr__, and every
# call ai-cache looks at makes one.
@dataclass(slots=True)
class CacheKey:
    """A request as the cache sees it: ``exact`` (the hex key of its entry), and for the
    semantic cache ``partition`` and ``question`` (None when it has no user text)."""

    exact: str
    partition: str
    question: str | None


def _hash(head: bytes, rest: bytes) -> str:
    """``head`` (the API, scope, model and strategy, joined by NULs, which none of them
    holds) and then ``rest``, hashed as one (joined first: copying a kilobyte costs less
    than a second call into the hash, a quarter of its time here).

    SHA-256 cut to 128 bits: OpenSSL's, which uses the CPU's SHA instructions where it
    has them; Python's BLAKE2b is its portable C, a third slower on a kilobyte here."""
    return _SHA256(head + rest).hexdigest()[:32]


_SHA256 = hashlib.sha256


def _head(*parts: str) -> bytes:
    return "\x00".join(parts).encode() + b"\x00\x00"


def _is_text_part(part: Any) -> bool:
    return isinstance(part, dict) and part.get("type") in ("text", "input_text") and isinstance(part.get("text"), str)


def _text(content: Any) -> str:
    """The text of a message's content: a string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if _is_text_part(p))
    return ""


def _without_text(content: Any) -> Any:
    """A message's content with its text taken out, its other parts (an image, a file,
    a document, a tool's result) kept where they were: what the partition holds of the
    question's turn. The embedding is of the text alone, so anything else in the turn
    must match exactly, or a question about another image would get this one's answer."""
    if isinstance(content, list) and not all(_is_text_part(p) for p in content):
        return [{"type": p["type"], "text": _QUESTION} if _is_text_part(p) else p for p in content]
    # Text alone, as a string or as text parts (SDKs send either for the same question):
    # one partition, where the parts' shape kept a paraphrase from ever matching.
    return _QUESTION


def _user_turns(body: dict[str, Any], added: tuple[int, int]) -> list[tuple[list[Any] | None, int, str]]:
    """Where each of the client's user messages stands (its list and index; ``None`` for
    a Responses ``input`` that is a plain string) and its text, in order. ``added``: the
    turns a prompt plugin put before and after the client's, which are no question of
    its (``prompt_shapes.ADDED_TURNS``)."""
    found: list[tuple[list[Any] | None, int, str]] = []
    value = body.get("input") if "messages" not in body else body.get("messages")
    if isinstance(value, str):
        return [(None, 0, value)]
    if not isinstance(value, list):
        return found
    for i in range(added[0], len(value) - added[1]):
        item = value[i]
        if isinstance(item, dict) and item.get("role") == "user" and item.get("type", "message") == "message":
            text = _text(item.get("content"))
            if text:
                found.append((value, i, text))
    return found


def cache_key(
    api: str,
    body: dict[str, Any],
    upstream_model: str,
    strategy: KeyStrategy,
    scope: str,
    semantic: bool = False,
    added: tuple[int, int] = (0, 0),
) -> CacheKey | None:
    """The request's key, or None when the strategy keys on questions and the request has
    none (nothing to key on: not cached). ``partition`` and ``question`` are worked out
    only for a ``semantic`` cache (else ``partition`` is the key, ``question`` None): one
    serialisation and one hash is all an exact cache's request costs. ``added``: the
    turns before and after the client's that a prompt plugin put there (``_user_turns``)."""
    head = _head(api, scope, upstream_model, strategy)
    if strategy == "request":
        reduced = dict(body)
        for name in _DELIVERY.intersection(reduced):  # (a C-level set operation, most often empty)
            del reduced[name]
        reduced["model"] = upstream_model
        exact = _hash(head, orjson.dumps(reduced, option=orjson.OPT_SORT_KEYS))
        turns = _user_turns(body, added) if semantic else []
        if not turns:
            return CacheKey(exact, exact, None)
        where, index, question = turns[-1]
        if where is None:
            reduced["input"] = _QUESTION
        else:
            # The body without its last question: a copy of the list, the rest shared.
            copied = list(where)
            copied[index] = {**copied[index], "content": _without_text(copied[index].get("content"))}
            reduced["messages" if "messages" in body else "input"] = copied
        return CacheKey(exact, _hash(head, orjson.dumps(reduced, option=orjson.OPT_SORT_KEYS)), question)
    turns = _user_turns(body, added)
    if not turns:
        return None
    question = turns[-1][2] if strategy == "lastQuestion" else "\n".join(t for _, _, t in turns)
    return CacheKey(_hash(head, question.encode()), _hash(head, b""), question if semantic else None)


__all__ = ["CacheKey", "KeyStrategy", "cache_key"]
