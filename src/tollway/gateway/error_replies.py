"""The one place that turns a ``GatewayError`` into what the client receives, in the
client's dialect: a whole error answer, or the event that ends a stream already begun."""

from __future__ import annotations

import orjson

from tollway.errors import GatewayError
from tollway.exchange import Reply
from tollway.protocols.anthropic import wire as anthropic
from tollway.protocols.apis import RESPONSES, Dialect
from tollway.protocols.gemini import errors as gemini
from tollway.protocols.openai import wire as openai


def render_error(err: GatewayError, dialect: Dialect) -> Reply:
    headers = [("x-tollway-reason", err.reason), *err.headers]
    if err.body is not None:
        body = err.body
    elif dialect == "anthropic":
        body = anthropic.error_body(err.status, err.message)
    elif dialect == "gemini":
        body = gemini.error_body(err.status, err.message)
    else:
        body = openai.error_body(err.status, err.message, err.code, err.param)
    headers.append(("content-type", "application/json"))
    return Reply(err.status, headers, body)


def render_stream_error(err: GatewayError, dialect: Dialect, api_path: str = "") -> bytes:
    """The last event of a stream that failed after the answer began (none when the
    provider's own error event already told the client); ``api_path`` tells the
    Responses API (its ``error`` event) from chat in the OpenAI dialect."""
    if err.told_client:
        return b""
    if dialect == "anthropic":
        return anthropic.stream_error_event(err.status, err.message)
    if dialect == "gemini":
        return gemini.stream_error_event(err.status, err.message)
    if api_path == RESPONSES:
        event = {"type": "error", "code": err.code, "message": err.message, "param": err.param}
        return b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"
    return openai.stream_error_event(err.message, err.code)
