"""Gemini ``GenerateContentResponse`` answers ↔ OpenAI ``chat.completion`` objects.

- ``candidates[i]`` ↔ ``choices[i]``: text parts joined → ``content``; parts marked
  ``thought`` → ``reasoning_content``; ``functionCall`` parts → ``tool_calls``.
- ``finishReason``: ``STOP`` → ``stop`` (``tool_calls`` when the candidate calls a
  function: Gemini says STOP there too), ``MAX_TOKENS`` → ``length``, the safety family
  (``SAFETY``, ``RECITATION``, ``BLOCKLIST``, ``PROHIBITED_CONTENT``, ``SPII``, image
  variants) → ``content_filter``, anything else → ``stop``. A prompt blocked before any
  candidate (``promptFeedback.blockReason``) is one empty ``content_filter`` choice.
- ``usageMetadata``: ``prompt_tokens = promptTokenCount + toolUsePromptTokenCount``
  (the prompt count already includes ``cachedContentTokenCount``, → ``cached_tokens``);
  ``completion_tokens = candidatesTokenCount + thoughtsTokenCount`` (OpenAI counts
  reasoning inside completion tokens; ``thoughtsTokenCount`` → ``reasoning_tokens``).
- ``responseId`` ↔ ``id`` (``chatcmpl-`` prefixed), ``modelVersion`` ↔ ``model``.
"""

from __future__ import annotations

from typing import Any

from tollway.protocols import pivot
from tollway.protocols.codec import Json
from tollway.protocols.gemini.request import call_to_pivot, function_call_part
from tollway.protocols.lists import members
from tollway.protocols.usage import believable

FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)
FINISH_TO_NATIVE = {"stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}


def finish_reason(native: Any, called: bool) -> str | None:
    if not native:
        return None
    if native == "MAX_TOKENS":
        return "length"
    if native in FILTERED:
        return "content_filter"
    return "tool_calls" if called else "stop"


_COUNTS = ("promptTokenCount", "toolUsePromptTokenCount", "thoughtsTokenCount", "candidatesTokenCount",
           "cachedContentTokenCount")  # fmt: skip


def usage_to_pivot(meta: Any) -> Json | None:
    if not isinstance(meta, dict) or not believable(*(meta.get(name) for name in _COUNTS)):
        return None  # (none, or none to believe: the call is estimated)
    prompt = pivot.as_int(meta.get("promptTokenCount")) + pivot.as_int(meta.get("toolUsePromptTokenCount"))
    thoughts = pivot.as_int(meta.get("thoughtsTokenCount"))
    completion = pivot.as_int(meta.get("candidatesTokenCount")) + thoughts
    return pivot.usage(prompt, completion, pivot.as_int(meta.get("cachedContentTokenCount")), thoughts)


def usage_from_pivot(u: Any) -> Json:
    prompt, completion, cached, reasoning = pivot.read_usage(u)
    meta: Json = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": max(completion - reasoning, 0),
        "totalTokenCount": prompt + completion,
    }
    if cached:
        meta["cachedContentTokenCount"] = cached
    if reasoning:
        meta["thoughtsTokenCount"] = reasoning
    return meta


def id_to_pivot(response_id: Any) -> str:
    return "chatcmpl-" + response_id if isinstance(response_id, str) and response_id else pivot.new_id("chatcmpl-")


def parts_of(candidate: Any) -> list[Json]:
    parts = pivot.member(candidate, "content").get("parts")
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _message(parts: list[Json]) -> Json:
    texts = [str(p["text"]) for p in parts if "text" in p and not p.get("thought")]
    thoughts = [str(p["text"]) for p in parts if "text" in p and p.get("thought")]
    calls = [call_to_pivot(p, _call_id(p)) for p in parts if "functionCall" in p]
    message: Json = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = calls
    return message


def _call_id(part: Json) -> str:
    given = pivot.member(part, "functionCall").get("id")
    return given if isinstance(given, str) and given else pivot.new_id("call_")


def to_pivot(body: Json) -> Json:
    """A ``GenerateContentResponse`` → a ``chat.completion`` object."""
    choices: list[Json] = []
    for i, candidate in enumerate(members(body, "candidates")):
        parts = parts_of(candidate)
        message = _message(parts)
        index = candidate.get("index", i) if isinstance(candidate, dict) else i
        finish = (
            finish_reason(candidate.get("finishReason"), "tool_calls" in message)
            if isinstance(candidate, dict)
            else None
        )
        choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": finish})
    if not choices:
        blocked = pivot.member(body, "promptFeedback").get("blockReason")
        message = {"role": "assistant", "content": None}
        choices.append(
            {"index": 0, "message": message, "logprobs": None, "finish_reason": "content_filter" if blocked else "stop"}
        )
    out: Json = {
        "id": id_to_pivot(body.get("responseId")),
        "object": "chat.completion",
        "created": pivot.now(),
        "model": str(body.get("modelVersion") or ""),
        "choices": choices,
    }
    usage = usage_to_pivot(body.get("usageMetadata"))
    if usage is not None:
        out["usage"] = usage
    return out


def message_parts(message: Json) -> list[Json]:
    """An OpenAI assistant message (or delta) → Gemini ``model`` parts."""
    parts: list[Json] = []
    if isinstance(message.get("reasoning_content"), str) and message["reasoning_content"]:
        parts.append({"text": message["reasoning_content"], "thought": True})
    text = pivot.answer_text(message)
    if text:
        parts.append({"text": text})
    for call in members(message, "tool_calls"):
        fn = pivot.member(call, "function")
        fc: Json = {"name": fn.get("name"), "args": pivot.arguments_object(fn.get("arguments"))}
        if isinstance(call, dict) and isinstance(call.get("id"), str):
            fc["id"] = call["id"]
        parts.append(function_call_part(call, fc))
    return parts


def from_pivot(chat: Json) -> Json:
    """A ``chat.completion`` object → a ``GenerateContentResponse``."""
    candidates = []
    for i, choice in enumerate(members(chat, "choices")):
        if not isinstance(choice, dict):
            continue
        candidate: Json = {
            "content": {"role": "model", "parts": message_parts(pivot.member(choice, "message"))},
            "index": choice.get("index", i),
        }
        if choice.get("finish_reason"):
            candidate["finishReason"] = FINISH_TO_NATIVE.get(str(choice["finish_reason"]), "STOP")
        candidates.append(candidate)
    body: Json = {"candidates": candidates, "usageMetadata": usage_from_pivot(chat.get("usage"))}
    if chat.get("model"):
        body["modelVersion"] = chat["model"]
    if isinstance(chat.get("id"), str):
        body["responseId"] = chat["id"].removeprefix("chatcmpl-")
    return body
