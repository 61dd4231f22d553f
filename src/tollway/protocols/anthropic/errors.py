"""Anthropic error bodies ``{"type": "error", "error": {"type", "message"}}`` ↔ OpenAI's
``{"error": {"message", "type", "code"}}``, whole bodies and stream error events alike."""

from __future__ import annotations

from typing import Any

import orjson

from tollway.protocols import pivot
from tollway.protocols.anthropic import wire as anthropic_wire
from tollway.protocols.codec import Json

# What status an Anthropic error type stands for, for errors that arrive without one
# (inside a stream, where the HTTP status was already 200).
STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
_OPENAI_TYPES = {"invalid_request_error", "authentication_error", "permission_error", "not_found_error"}
_OPENAI_TYPE_STATUS = {"rate_limit_error": 429, "insufficient_quota": 429, "server_error": 500, "api_error": 500}
# The gateway's own codes that say more than the type does: a stream it closes because
# the provider went silent (the 504 it would have answered before the stream began).
_OPENAI_CODE_STATUS = {"upstream_timeout": 504}


def error_to_pivot_obj(status: int, err: Any) -> Json:
    """An Anthropic ``error`` member (``{"type", "message"}``) → an OpenAI error object."""
    etype = err.get("type") if isinstance(err, dict) else None
    message = err.get("message") if isinstance(err, dict) else None
    if status < 400:
        status = STATUS_OF_TYPE.get(str(etype), 500)
    return pivot.error_obj(status, message if isinstance(message, str) else "upstream error")


def error_to_pivot(status: int, body: bytes) -> bytes:
    obj = pivot.loads(body)
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return orjson.dumps(error_to_pivot_obj(status, err))
    message, _, _ = pivot.read_error(body)
    return pivot.error_body(status, message)


def error_member(status: int, message: str, openai_type: str | None, code: str | None = None) -> Json:
    """Anthropic's ``error`` member for an OpenAI error of this status, type and code."""
    if status < 400:
        if openai_type in _OPENAI_TYPES:
            return {"type": openai_type, "message": message}
        status = _OPENAI_CODE_STATUS.get(str(code)) or _OPENAI_TYPE_STATUS.get(str(openai_type), 500)
    return {"type": anthropic_wire.error_type(status), "message": message}


def error_from_pivot(status: int, body: bytes) -> bytes:
    message, etype, _ = pivot.read_error(body)
    return orjson.dumps({"type": "error", "error": error_member(status, message, etype)})


def error_event_from_pivot(chunk: Json) -> Json:
    """A pivot error chunk ``{"error": {…}}`` → the data of Anthropic's ``error`` event."""
    message, etype, code = pivot.read_error(orjson.dumps(chunk))
    return {"type": "error", "error": error_member(200, message, etype, code)}
