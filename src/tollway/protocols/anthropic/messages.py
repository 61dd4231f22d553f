"""Anthropic's Messages API as a codec: requests, answers, streams, errors and model
lists, each direction documented in its own module of this package
(``request_from_pivot``, ``request_to_pivot``, ``response``, ``stream``, ``errors``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tollway.protocols.anthropic import errors as anthropic_errors
from tollway.protocols.anthropic import request_from_pivot as anthropic_request_from_pivot
from tollway.protocols.anthropic import request_to_pivot as anthropic_request_to_pivot
from tollway.protocols.anthropic import response as anthropic_response
from tollway.protocols.anthropic.stream import AnthropicStreamReader, AnthropicStreamWriter
from tollway.protocols.apis import MESSAGES
from tollway.protocols.codec import ApiPath, Json, StreamReader, StreamWriter


class AnthropicMessages:
    name = "anthropic"
    pivot_fields: Mapping[str, str] = {
        "parallel_tool_calls": "tool_choice.disable_parallel_tool_use",
        "stop": "stop_sequences",
        "max_completion_tokens": "max_tokens",
        "user": "metadata.user_id",
        "reasoning_effort": "thinking",
        "response_format": "output_config.format",
    }

    def api_path(self, stream: bool, model: str) -> ApiPath:
        return ApiPath(MESSAGES)

    def request_to_pivot(self, body: Json) -> Json:
        return anthropic_request_to_pivot.to_pivot(body)

    def request_from_pivot(self, chat: Json) -> Json:
        return anthropic_request_from_pivot.from_pivot(chat)

    def response_to_pivot(self, body: Json) -> Json:
        return anthropic_response.to_pivot(body)

    def response_from_pivot(self, chat: Json) -> Json:
        return anthropic_response.from_pivot(chat)

    def stream_to_pivot(self) -> StreamReader:
        return AnthropicStreamReader()

    def stream_from_pivot(self, client_request: Mapping[str, Any]) -> StreamWriter:
        model = client_request.get("model")
        return AnthropicStreamWriter(model if isinstance(model, str) else "")

    def error_to_pivot(self, status: int, body: bytes) -> bytes:
        return anthropic_errors.error_to_pivot(status, body)

    def error_from_pivot(self, status: int, body: bytes) -> bytes:
        return anthropic_errors.error_from_pivot(status, body)

    def model_ids(self, body: Any) -> list[str]:
        """``GET /v1/models`` answers ``{"data": [{"type": "model", "id", …}], …}``."""
        data = body.get("data") if isinstance(body, dict) else None
        return [m["id"] for m in data or () if isinstance(m, dict) and isinstance(m.get("id"), str)]
