"""Gemini error bodies ``{"error": {"code", "message", "status"}}`` ↔ OpenAI's
``{"error": {"message", "type", "code"}}``. ``streamGenerateContent`` without
``alt=sse`` wraps the body in a one-element list; both forms are read."""

from __future__ import annotations

import math
from typing import Any

import orjson

from tollway.protocols import pivot
from tollway.protocols.codec import Json
from tollway.protocols.lists import members

# google.rpc.Code names by HTTP status, as the Gemini API reports them.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _member(obj: Any) -> Json | None:
    if isinstance(obj, list) and obj:
        obj = obj[0]
    err = obj.get("error") if isinstance(obj, dict) else None
    return err if isinstance(err, dict) else None


def error_obj_to_pivot(err: Any, status: int = 0) -> Json:
    """A Gemini ``error`` member → an OpenAI error object."""
    if not isinstance(err, dict):
        err = {}
    if status < 400:
        code = err.get("code")
        status = code if isinstance(code, int) and code >= 400 else 500
    message = err.get("message")
    return pivot.error_obj(status, message if isinstance(message, str) else "upstream error")


def error_to_pivot(status: int, body: bytes) -> bytes:
    err = _member(pivot.loads(body))
    if err is not None:
        return orjson.dumps(error_obj_to_pivot(err, status))
    message, _, _ = pivot.read_error(body)
    return pivot.error_body(status, message)


def _native(status: int, message: str) -> Json:
    name = STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
    return {"error": {"code": status, "message": message, "status": name}}


def error_body(status: int, message: str) -> bytes:
    """The gateway's own refusal, as Google's API words one."""
    return orjson.dumps(_native(status, message))


def stream_error_event(status: int, message: str) -> bytes:
    """The event that ends a Gemini stream (``alt=sse``) the gateway had to cut."""
    return b"data: " + error_body(status, message) + b"\n\n"


def error_from_pivot(status: int, body: bytes) -> bytes:
    message, _, _ = pivot.read_error(body)
    return orjson.dumps(_native(status, message))


def error_event_from_pivot(chunk: Json) -> Json:
    """A pivot error chunk ``{"error": {…}}`` → the data of a Gemini stream error event."""
    message, etype, _ = pivot.read_error(orjson.dumps(chunk))
    status = {"invalid_request_error": 400, "authentication_error": 401, "permission_error": 403}.get(
        str(etype), 429 if etype == "rate_limit_error" else 500
    )
    return _native(status, message)


def retry_after(body: bytes) -> str | None:
    """The seconds a Gemini error body's ``RetryInfo`` asks a client to wait, as a
    ``Retry-After`` value (rounded up); None when it names none. Google's 429 carries its
    retry delay there alone (``"retryDelay": "7s"``), no header: a translated client's
    SDK reads only the header."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    for detail in members(_member(answer), "details"):
        if not isinstance(detail, dict) or not str(detail.get("@type", "")).endswith("RetryInfo"):
            continue
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                seconds = float(delay[:-1])
            except ValueError:
                return None
            if 0 <= seconds <= 86_400:  # (a day at most; nan and infinity are neither)
                return str(math.ceil(seconds))
    return None
