"""OpenAI's shapes: errors, stream chunks, the usage chunk, model lists."""

from __future__ import annotations

from typing import Any

import orjson

from tollway.protocols.lists import members

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(status: int, message: str, code: str, param: str | None = None) -> bytes:
    etype = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"error": {"message": message, "type": etype, "code": code, "param": param}})


def stream_error_event(message: str, code: str) -> bytes:
    return b"data: " + orjson.dumps({"error": {"message": message, "type": "api_error", "code": code}}) + b"\n\n"


def is_usage_only_chunk(obj: Any) -> bool:
    """The extra final chunk ``include_usage`` adds: no choices, just usage."""
    return isinstance(obj, dict) and obj.get("choices") == [] and obj.get("usage") is not None


def content_chars(obj: Any) -> int:
    """Characters generated in one stream event (for estimates): text and tool-call
    arguments of an OpenAI chat or completions chunk, of an Anthropic
    ``content_block_delta``, or the text of a Gemini ``GenerateContentResponse`` chunk."""
    n = 0
    if not isinstance(obj, dict):
        return 0
    # (Every stream event passes here: the lists are checked inline, as
    # ``protocols.lists.members`` does, without a call each.)
    choices = obj.get("choices")
    for choice in choices if type(choices) is list else ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        if isinstance(delta, dict):
            if isinstance(delta.get("content"), str):
                n += len(delta["content"])
            calls = delta.get("tool_calls")
            for call in calls if type(calls) is list else ():
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    n += len(fn["arguments"])
        elif isinstance(choice.get("text"), str):
            n += len(choice["text"])
    delta = obj.get("delta")
    if obj.get("type") == "content_block_delta" and isinstance(delta, dict):
        for key in ("text", "partial_json", "thinking"):
            if isinstance(delta.get(key), str):
                n += len(delta[key])
    candidates = obj.get("candidates")
    for candidate in candidates if type(candidates) is list else ():  # a chunk of Gemini's own stream
        content = candidate.get("content") if isinstance(candidate, dict) else None
        for part in members(content, "parts"):
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                n += len(part["text"])
    return n


def take_sampling(body: dict[str, Any], chat: dict[str, Any], keys: tuple[str, ...] = ("temperature", "top_p")) -> None:
    """Copies ``keys`` that ``body`` sets, and a stream request (asking for its usage, so
    the client can be given it), into the pivot ``chat``."""
    for key in keys:
        if body.get(key) is not None:
            chat[key] = body[key]
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
