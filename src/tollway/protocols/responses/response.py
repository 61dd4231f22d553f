"""The Responses API's ``response`` object and its output items, built from the pivot.

A ``chat.completion`` becomes a ``response``: the message's text → a ``message`` item
with one ``output_text`` part (a refusal → a ``refusal`` part), each tool call → a
``function_call`` item (``call_id`` the provider's call id), ``finish_reason`` →
``status`` (``length`` and ``content_filter`` → ``incomplete`` with their
``incomplete_details``), usage → ``input_tokens`` / ``output_tokens`` with the cached and
reasoning details. The request's settings are echoed as OpenAI echoes them; ``store`` is
false (a translated response is kept nowhere).

Claude's signed thinking (the pivot's ``thinking_blocks``) is a ``reasoning`` item first,
its ``encrypted_content`` the blocks sealed (``tollway.protocols.thinking_blocks``): a
client that keeps its own state sends the item back, and Claude, which needs its
thinking back after a tool call, gets it. The item has no summary and no text: the
thinking text is not sent as a summary nobody asked for. Other reasoning text a provider
returns is not an output item, as OpenAI keeps reasoning to itself unless asked.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from tollway.protocols import pivot, thinking_blocks
from tollway.protocols.codec import Json
from tollway.protocols.lists import members
from tollway.protocols.usage import CACHE_WRITES, CACHE_WRITES_1H

# finish_reason → the status and incomplete_details.reason of the response.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
# Request settings a response object repeats, with OpenAI's value when the request has none.
_ECHOED: dict[str, Any] = {
    "instructions": None, "max_output_tokens": None, "max_tool_calls": None, "parallel_tool_calls": True,
    "prompt_cache_key": None, "safety_identifier": None, "service_tier": None, "temperature": None,
    "tool_choice": "auto", "top_p": None, "truncation": "disabled", "user": None,
}  # fmt: skip


def usage(chat_usage: Any) -> Json | None:
    """A pivot usage object in the Responses API's words (None when there is none)."""
    if not isinstance(chat_usage, dict):
        return None
    prompt, completion, cached, reasoning = pivot.read_usage(chat_usage)
    # Both counts always: the OpenAI SDKs' ``ResponseUsage`` requires them.
    input_details: Json = {"cached_tokens": cached, CACHE_WRITES: pivot.cache_writes_of(chat_usage)}
    one_hour = pivot.cache_writes_1h_of(chat_usage)
    if one_hour:  # (a Claude answer's one-hour cache writes, priced apart)
        input_details[CACHE_WRITES_1H] = min(one_hour, input_details[CACHE_WRITES])
    return {
        "input_tokens": prompt,
        "input_tokens_details": input_details,
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


def status_of(finish_reason: Any) -> tuple[str, Json | None]:
    """The response's ``status`` and ``incomplete_details`` for a pivot finish reason."""
    reason = _INCOMPLETE.get(finish_reason) if isinstance(finish_reason, str) else None
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


# What starts the id of a response the gateway made by translation (kept nowhere: a
# later ``GET /v1/responses/{id}`` is refused whichever provider it would reach). Not
# hex, so no id of OpenAI's (``resp_`` and hex) is ever taken for one.
MINTED = "resp_tw_"


def minted_id(given: Any) -> str:
    """The id of a translated response: the pivot's id (the provider's own) behind
    ``MINTED``, or a new one."""
    return MINTED + given if isinstance(given, str) and given else pivot.new_id(MINTED)


def response_object(
    request: Mapping[str, Any],
    ident: str,
    model: Any,
    created: int,
    status: str,
    output: list[Json],
    usage_obj: Json | None,
    *,
    incomplete: Json | None = None,
    error: Json | None = None,
) -> Json:
    out: Json = {
        "id": ident,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": error,
        "incomplete_details": incomplete,
        "model": model,
        "output": output,
        "usage": usage_obj,
        "metadata": request.get("metadata") or {},
        "previous_response_id": None,
        "store": False,
        "tools": request.get("tools") or [],
    }
    for field, default in _ECHOED.items():
        value = request.get(field)
        out[field] = default if value is None else value
    effort = pivot.member(request, "reasoning").get("effort")
    out["reasoning"] = {"effort": effort, "summary": None}
    text = request.get("text")
    out["text"] = text if isinstance(text, dict) and text.get("format") else {"format": {"type": "text"}}
    return out


def message_item(ident: str, parts: list[Json], status: str = "completed") -> Json:
    return {"type": "message", "id": ident, "status": status, "role": "assistant", "content": parts}


def text_part(text: str) -> Json:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def refusal_part(text: str) -> Json:
    return {"type": "refusal", "refusal": text}


def reasoning_item(ident: str, blocks: list[Json]) -> Json:
    """A reasoning item carrying Claude's thinking blocks (see the module)."""
    return {"type": "reasoning", "id": ident, "summary": [], "encrypted_content": thinking_blocks.seal(blocks)}


def call_item(call_id: str, name: Any, arguments: str, status: str = "completed") -> Json:
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def from_pivot(chat: Json, request: Mapping[str, Any]) -> Json:
    """A ``chat.completion`` → a ``response`` answering ``request``."""
    choice = pivot.first_choice(chat)
    message = pivot.member(choice, "message")
    ident = str(chat.get("id") or pivot.new_id(""))
    parts: list[Json] = []
    text = pivot.text_of(message.get("content"))
    if text:
        parts.append(text_part(text))
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        parts.append(refusal_part(message["refusal"]))
    signed = thinking_blocks.of_answer(message)
    output: list[Json] = [reasoning_item(f"rs_{ident}", signed)] if signed else []
    status, incomplete = status_of(choice.get("finish_reason"))
    if parts:
        # Cut by the output limit or a filter: the message is as incomplete as the
        # response (OpenAI marks the item so).
        output.append(message_item(f"msg_{ident}", parts, status))
    for call in members(message, "tool_calls"):
        fn = pivot.member(call, "function")
        arguments = fn.get("arguments")
        if not isinstance(arguments, str):
            arguments = pivot.dumps(arguments or {})
        output.append(call_item(str(call.get("id")), fn.get("name"), arguments))
    created = chat.get("created")
    return response_object(
        request,
        minted_id(ident),
        chat.get("model"),
        created if isinstance(created, int) else int(time.time()),
        status,
        output,
        usage(chat.get("usage")),
        incomplete=incomplete,
    )
