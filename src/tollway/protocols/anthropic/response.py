"""Anthropic Messages answers ↔ OpenAI ``chat.completion`` objects (the pivot).

- ids: ``msg_X`` ↔ ``chatcmpl-X``; tool-use ids are kept as tool-call ids.
- content: text blocks joined → ``message.content``; ``tool_use`` blocks →
  ``message.tool_calls`` (``input`` as JSON ``arguments``); ``thinking`` blocks →
  ``message.reasoning_content`` (the field DeepSeek-style OpenAI-compatible APIs use),
  and with ``redacted_thinking`` blocks, whole and signed, → ``message.thinking_blocks``
  (see ``tollway.protocols.thinking_blocks``: Claude needs them back after a tool call).
  Back, ``thinking_blocks`` are the answer's first blocks as they stand; without them,
  ``reasoning_content`` is one unsigned thinking block.
- ``stop_reason`` ↔ ``finish_reason``: ``end_turn``/``stop_sequence``/``pause_turn`` →
  ``stop``, ``max_tokens`` → ``length``, ``tool_use`` → ``tool_calls``, ``refusal`` →
  ``content_filter``; back: ``stop`` → ``end_turn`` (OpenAI does not say whether a stop
  sequence matched).
- usage: Anthropic's ``input_tokens`` excludes cache reads and writes, OpenAI's
  ``prompt_tokens`` includes them: ``prompt_tokens = input + cache_read + cache_creation``,
  ``cached_tokens = cache_read``; back, ``input_tokens = prompt − cached``.
"""

from __future__ import annotations

from typing import Any

from tollway.protocols import pivot, thinking_blocks
from tollway.protocols.codec import Json
from tollway.protocols.lists import members
from tollway.protocols.usage import believable

STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def finish_reason(stop_reason: Any) -> str | None:
    if stop_reason is None:
        return None
    return STOP_TO_FINISH.get(str(stop_reason), "stop")


def stop_reason(finish: Any) -> str | None:
    if finish is None:
        return None
    return FINISH_TO_STOP.get(str(finish), "end_turn")


def usage_to_pivot(u: Any) -> Json | None:
    """An Anthropic usage object → OpenAI's; None when there is none."""
    if not isinstance(u, dict):
        return None
    breakdown = u.get("cache_creation")
    if not believable(
        u.get("input_tokens"),
        u.get("output_tokens"),
        u.get("cache_read_input_tokens"),
        u.get("cache_creation_input_tokens"),
        breakdown.get("ephemeral_1h_input_tokens") if isinstance(breakdown, dict) else None,
    ):
        return None  # (no usage: the call is estimated, as an untranslated one would be)
    cache_read = pivot.as_int(u.get("cache_read_input_tokens"))
    writes = pivot.as_int(u.get("cache_creation_input_tokens"))
    prompt = pivot.as_int(u.get("input_tokens")) + cache_read + writes
    one_hour = pivot.as_int(breakdown.get("ephemeral_1h_input_tokens")) if isinstance(breakdown, dict) else 0
    return pivot.usage(
        prompt, pivot.as_int(u.get("output_tokens")), cached=cache_read, cache_writes=writes, cache_writes_1h=one_hour
    )


def usage_from_pivot(u: Any) -> Json:
    prompt, completion, cached, _ = pivot.read_usage(u)
    writes = min(pivot.cache_writes_of(u), prompt - cached)
    out: Json = {
        "input_tokens": prompt - cached - writes,
        "output_tokens": completion,
        "cache_creation_input_tokens": writes,
        "cache_read_input_tokens": cached,
    }
    one_hour = min(pivot.cache_writes_1h_of(u), writes)
    if one_hour:
        out["cache_creation"] = {"ephemeral_5m_input_tokens": writes - one_hour, "ephemeral_1h_input_tokens": one_hour}
    return out


def id_to_pivot(native: Any) -> str:
    if isinstance(native, str) and native:
        return "chatcmpl-" + native.removeprefix("msg_")
    return pivot.new_id("chatcmpl-")


def id_from_pivot(chat_id: Any) -> str:
    if isinstance(chat_id, str) and chat_id:
        return "msg_" + chat_id.removeprefix("chatcmpl-")
    return pivot.new_id("msg_")


def tool_call_to_pivot(block: Json) -> Json:
    """A ``tool_use`` block (an answer's, or an assistant turn's in a request) as a chat
    tool call: ``input`` becomes the JSON text of ``arguments``."""
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name"), "arguments": pivot.dumps(block.get("input") or {})},
    }


def to_pivot(message: Json) -> Json:
    """An Anthropic ``message`` object → a ``chat.completion`` object."""
    texts: list[str] = []
    thinking: list[str] = []
    signed: list[Json] = []
    calls: list[Json] = []
    for block in members(message, "content"):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "thinking":
            thinking.append(str(block.get("thinking", "")))
        elif kind == "tool_use":
            calls.append(tool_call_to_pivot(block))
        whole = thinking_blocks.block(block)
        if whole is not None:
            signed.append(whole)
    out: Json = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if thinking:
        out["reasoning_content"] = "".join(thinking)
    if signed:
        out[thinking_blocks.FIELD] = signed
    if calls:
        out["tool_calls"] = calls
    return pivot.completion(
        id_to_pivot(message.get("id")),
        str(message.get("model") or ""),
        pivot.now(),
        out,
        finish_reason(message.get("stop_reason")),
        usage_to_pivot(message.get("usage")),
    )


def from_pivot(chat: Json) -> Json:
    """A ``chat.completion`` object → an Anthropic ``message`` object."""
    choice = pivot.first_choice(chat)
    msg = choice.get("message")
    if not isinstance(msg, dict):
        msg = {}
    content: list[Json] = thinking_blocks.of_answer(msg)
    if not content and isinstance(msg.get("reasoning_content"), str) and msg["reasoning_content"]:
        content.append({"type": "thinking", "thinking": msg["reasoning_content"], "signature": ""})
    text = pivot.answer_text(msg)
    if text:
        content.append({"type": "text", "text": text})
    for call in members(msg, "tool_calls"):
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            content.append(
                {
                    "type": "tool_use",
                    "id": call.get("id") or pivot.new_id("toolu_"),
                    "name": fn.get("name"),
                    "input": pivot.arguments_object(fn.get("arguments")),
                }
            )
    return {
        "id": id_from_pivot(chat.get("id")),
        "type": "message",
        "role": "assistant",
        "model": str(chat.get("model") or ""),
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason")) or "end_turn",
        "stop_sequence": None,
        "usage": usage_from_pivot(chat.get("usage")),
    }
