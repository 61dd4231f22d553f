"""Anthropic's shapes, as far as the gateway itself speaks them (errors)."""

from __future__ import annotations

import orjson

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    502: "api_error",
    504: "api_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str) -> bytes:
    etype = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return orjson.dumps({"type": "error", "error": {"type": etype, "message": message}})


def stream_error_event(message: str) -> bytes:
    return (
        b"event: error\ndata: "
        + orjson.dumps({"type": "error", "error": {"type": "api_error", "message": message}})
        + b"\n\n"
    )
