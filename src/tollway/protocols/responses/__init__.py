"""The OpenAI Responses API as a client's protocol (SPEC §9): a ``POST /v1/responses``
call to a provider that does not speak it crosses the chat pivot like a chat call.

    request.py    a Responses request → a chat request; what cannot cross is refused
    response.py   a chat completion → a ``response`` object with its output items
    stream.py     chat chunks → the Responses event sequence

The Responses API is only ever the client's side of a translation here: a call to an
OpenAI-style provider that serves it passes as it came, so the provider-side methods
of the codec are not written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tollway.protocols.apis import RESPONSES
from tollway.protocols.codec import ApiPath, Json, StreamReader, TranslationError
from tollway.protocols.responses import request, response
from tollway.protocols.responses.stream import ResponsesStreamWriter

_EMPTY: Mapping[str, Any] = {}


class ResponsesCodec:
    """The Responses API on the client side of a translation. ``client_request`` is the
    body the client sent, whose settings a translated ``response`` object echoes (a
    stream's writer gets it as every codec's does)."""

    name = "responses"
    pivot_fields: Mapping[str, str] = {
        "max_completion_tokens": "max_output_tokens",
        "response_format": "text.format",
        "reasoning_effort": "reasoning.effort",
    }

    def __init__(self, client_request: Mapping[str, Any] = _EMPTY) -> None:
        self._client_request = client_request

    def api_path(self, stream: bool, model: str) -> ApiPath:
        return ApiPath(RESPONSES)

    def request_to_pivot(self, body: Json) -> Json:
        return request.to_pivot(body)

    def response_from_pivot(self, chat: Json) -> Json:
        return response.from_pivot(chat, self._client_request)

    def stream_from_pivot(self, client_request: Mapping[str, Any]) -> ResponsesStreamWriter:
        return ResponsesStreamWriter(client_request)

    def error_from_pivot(self, status: int, body: bytes) -> bytes:
        return body  # the Responses API answers errors in OpenAI's shape, the pivot's

    def request_from_pivot(self, chat: Json) -> Json:
        raise TranslationError("the Responses API is not a provider protocol here")

    def response_to_pivot(self, body: Json) -> Json:
        raise TranslationError("the Responses API is not a provider protocol here")

    def stream_to_pivot(self) -> StreamReader:
        raise TranslationError("the Responses API is not a provider protocol here")

    def error_to_pivot(self, status: int, body: bytes) -> bytes:
        return body

    def model_ids(self, body: Any) -> list[str]:
        return []


__all__ = ["ResponsesCodec", "ResponsesStreamWriter"]
