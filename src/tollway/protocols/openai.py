"""OpenAI's shapes: errors, stream chunks, the usage chunk, model lists."""

from __future__ import annotations

from typing import Any

import orjson

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(status: int, message: str, code: str) -> bytes:
    etype = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"error": {"message": message, "type": etype, "code": code, "param": None}})


def stream_error_event(message: str, code: str) -> bytes:
    return b"data: " + orjson.dumps({"error": {"message": message, "type": "api_error", "code": code}}) + b"\n\n"


def is_usage_only_chunk(obj: Any) -> bool:
    """The extra final chunk ``include_usage`` adds: no choices, just usage."""
    return isinstance(obj, dict) and obj.get("choices") == [] and obj.get("usage") is not None


def content_chars(obj: Any) -> int:
    """Characters of generated text in a chat or completions chunk (for estimates)."""
    n = 0
    if isinstance(obj, dict):
        for choice in obj.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                n += len(delta["content"])
            elif isinstance(choice.get("text"), str):
                n += len(choice["text"])
    return n


def model_list(ids: list[str]) -> bytes:
    return orjson.dumps(
        {"object": "list", "data": [{"id": i, "object": "model", "created": 0, "owned_by": "tollway"} for i in ids]}
    )
