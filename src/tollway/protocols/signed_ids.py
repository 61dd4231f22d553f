"""Gemini's thought signatures carried in tool-call ids, for clients whose protocol has no
field for them.

Gemini refuses a thinking model's function call sent back without the
``thoughtSignature`` its answer gave the call. The pivot carries the signature as
Google's own OpenAI layer does, in ``tool_calls[].extra_content.google.thought_signature``,
which an OpenAI chat client sees and sends back. An Anthropic Messages client
(``tool_use`` blocks) or a Responses client (``function_call`` items) has no such field,
but sends a call's id back as it got it: in the call, and in the result that answers
it. So for those clients the signature rides in the id::

    <the call's id> + "__tsig_" + base64url(signature, unpadded)

which keeps to Anthropic's tool-use id pattern ``^[a-zA-Z0-9_-]+$``. ``fold`` makes such
ids on an answer's way to such a client; ``unfold`` reads them back in any client's
request: each call regains its own id with the signature in ``extra_content``, and each
tool result the call's own id, so results still match their calls.
"""

from __future__ import annotations

import base64
import binascii

from tollway.protocols import pivot
from tollway.protocols.codec import Json, StreamWriter
from tollway.protocols.sse import SseEvent

# Client protocols (``Codec.name``) with no field for a tool call's signature.
CARRIED_IN_IDS = frozenset({"anthropic", "responses"})
_MARK = "__tsig_"


def signature_of(call: object) -> str | None:
    """The thought signature a pivot tool call carries in ``extra_content``, if any."""
    signature = pivot.member(pivot.member(call, "extra_content"), "google").get("thought_signature")
    return signature if isinstance(signature, str) and signature else None


def fold_id(call_id: str, signature: str) -> str:
    """``call_id`` carrying ``signature``; an id that already holds the mark (no id the
    gateway or Gemini makes does) is kept as it is, so that ``unfold_id`` stays exact."""
    if _MARK in call_id:
        return call_id
    return call_id + _MARK + base64.urlsafe_b64encode(signature.encode()).decode().rstrip("=")


def unfold_id(given: str) -> tuple[str, str | None]:
    """(the call's own id, the signature ``fold_id`` put in ``given``, or None)."""
    call_id, mark, encoded = given.partition(_MARK)
    if not mark or not call_id:
        return given, None
    try:
        signature = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return given, None
    return (call_id, signature) if signature else (given, None)


def _folded_calls(calls: object) -> list[Json] | None:
    """``calls`` with signatures folded into ids; None when there is none to fold."""
    if not isinstance(calls, list) or not any(signature_of(c) for c in calls):
        return None
    out = []
    for call in calls:
        signature = signature_of(call)
        if signature is not None and isinstance(call.get("id"), str):
            call = {**call, "id": fold_id(call["id"], signature)}
        out.append(call)
    return out


def _folded_choice(choice: object) -> object:
    """``choice`` itself when its message or delta calls no tool with a signature, else a
    new one (most chunks carry text: a look at two keys)."""
    if isinstance(choice, dict):
        for key in ("message", "delta"):
            held = choice.get(key)
            if isinstance(held, dict) and "tool_calls" in held:
                calls = _folded_calls(held["tool_calls"])
                if calls is not None:
                    return {**choice, key: {**held, "tool_calls": calls}}
    return choice


def fold(chat: Json) -> Json:
    """A ``chat.completion`` or chunk whose tool calls carry their signatures in their
    ids too (the input is not changed; returned as it is when nothing is folded, as for
    every chunk of text: this runs on each chunk of a translated stream)."""
    choices = chat.get("choices")
    if not isinstance(choices, list):
        return chat
    changed: list[object] | None = None
    for i, choice in enumerate(choices):
        folded = _folded_choice(choice)
        if folded is not choice:
            changed = changed if changed is not None else list(choices)
            changed[i] = folded
    return chat if changed is None else {**chat, "choices": changed}


def _unfolded_call(call: object) -> object:
    if not isinstance(call, dict) or not isinstance(call.get("id"), str):
        return call
    call_id, signature = unfold_id(call["id"])
    if signature is None:
        return call
    if signature_of(call) is not None:  # (the client's own, sent beside: it stands)
        return {**call, "id": call_id}
    extra = pivot.member(call, "extra_content")
    google = {**pivot.member(extra, "google"), "thought_signature": signature}
    return {**call, "id": call_id, "extra_content": {**extra, "google": google}}


def _unfolded(message: object) -> object:
    """``message`` itself when it names no folded id, else a new one."""
    if not isinstance(message, dict):
        return message
    result_of = message.get("tool_call_id")
    if message.get("role") == "tool" and isinstance(result_of, str):
        call_id, signature = unfold_id(result_of)
        return message if signature is None else {**message, "tool_call_id": call_id}
    calls = message.get("tool_calls")
    if message.get("role") != "assistant" or not isinstance(calls, list):
        return message
    unfolded = [_unfolded_call(c) for c in calls]
    if all(new is old for new, old in zip(unfolded, calls, strict=True)):
        return message
    return {**message, "tool_calls": unfolded}


def unfold(chat: Json) -> Json:
    """A pivot request whose tool calls and results name calls by their own ids, the
    signatures folded into them back in ``extra_content`` (the input is not changed;
    returned as it is when no id was folded)."""
    messages = chat.get("messages")
    if not isinstance(messages, list):
        return chat
    changed: list[object] | None = None
    for i, message in enumerate(messages):
        if isinstance(message, dict) and ("tool_calls" in message or "tool_call_id" in message):
            unfolded = _unfolded(message)
            if unfolded is not message:
                changed = changed if changed is not None else list(messages)
                changed[i] = unfolded
    return chat if changed is None else {**chat, "messages": changed}


class FoldingWriter:
    """A client's stream writer that gets every chunk ``fold``-ed."""

    __slots__ = ("_writer",)

    def __init__(self, writer: StreamWriter) -> None:
        self._writer = writer

    def feed(self, chunk: Json) -> list[SseEvent]:
        return self._writer.feed(fold(chunk))

    def end(self) -> list[SseEvent]:
        return self._writer.end()
