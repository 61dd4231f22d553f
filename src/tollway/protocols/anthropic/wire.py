"""Anthropic's shapes, as far as the gateway itself speaks them (errors).

The error types by status are those of Anthropic's API errors page
(platform.claude.com/docs/en/api/errors): a 504 is ``timeout_error``, not ``api_error``."""

from __future__ import annotations

import orjson

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    502: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_body(status: int, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": error_type(status), "message": message}})


def stream_error_event(status: int, message: str) -> bytes:
    """The ``error`` event of a stream that failed with what would have been ``status``
    before it began (a 504 mid-stream is a ``timeout_error`` too)."""
    return (
        b"event: error\ndata: "
        + orjson.dumps({"type": "error", "error": {"type": error_type(status), "message": message}})
        + b"\n\n"
    )
