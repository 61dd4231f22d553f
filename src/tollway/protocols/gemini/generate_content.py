"""Google's Gemini API (``generateContent`` / ``streamGenerateContent?alt=sse``) as a
codec: requests, answers, streams, errors and model lists, each direction documented in
its own module of this package (``request``, ``response``, ``stream``, ``errors``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from tollway.protocols.codec import ApiPath, Json, StreamReader, StreamWriter
from tollway.protocols.gemini import errors as gemini_errors
from tollway.protocols.gemini import request as gemini_request
from tollway.protocols.gemini import response as gemini_response
from tollway.protocols.gemini.stream import GeminiStreamReader, GeminiStreamWriter


def model_path(model: str) -> str:
    """``/models/<model>``; a name given as ``models/<model>`` (as Gemini lists them) too."""
    return "/models/" + quote(model.removeprefix("models/"), safe="")


class GeminiGenerateContent:
    name = "gemini"
    pivot_fields: Mapping[str, str] = {
        "stop": "generationConfig.stopSequences",
        "max_completion_tokens": "generationConfig.maxOutputTokens",
        "n": "generationConfig.candidateCount",
        "seed": "generationConfig.seed",
        "presence_penalty": "generationConfig.presencePenalty",
        "frequency_penalty": "generationConfig.frequencyPenalty",
        "tool_choice": "toolConfig.functionCallingConfig",
    }

    def api_path(self, stream: bool, model: str) -> ApiPath:
        if stream:
            return ApiPath(model_path(model) + ":streamGenerateContent", "alt=sse")
        return ApiPath(model_path(model) + ":generateContent")

    def request_to_pivot(self, body: Json) -> Json:
        return gemini_request.to_pivot(body)

    def request_from_pivot(self, chat: Json) -> Json:
        return gemini_request.from_pivot(chat)

    def response_to_pivot(self, body: Json) -> Json:
        return gemini_response.to_pivot(body)

    def response_from_pivot(self, chat: Json) -> Json:
        return gemini_response.from_pivot(chat)

    def stream_to_pivot(self) -> StreamReader:
        return GeminiStreamReader()

    def stream_from_pivot(self, client_request: Mapping[str, Any]) -> StreamWriter:
        return GeminiStreamWriter()

    def error_to_pivot(self, status: int, body: bytes) -> bytes:
        return gemini_errors.error_to_pivot(status, body)

    def error_from_pivot(self, status: int, body: bytes) -> bytes:
        return gemini_errors.error_from_pivot(status, body)

    def model_ids(self, body: Any) -> list[str]:
        """``GET /v1beta/models`` answers ``{"models": [{"name": "models/…",
        "supportedGenerationMethods": […]}, …]}``: every model, those that only embed
        (``embedContent``) too, as OpenAI's list holds its embedding models; each entry
        says what it can do."""
        models = body.get("models") if isinstance(body, dict) else None
        return [
            m["name"].removeprefix("models/")
            for m in models or ()
            if isinstance(m, dict) and isinstance(m.get("name"), str)
        ]
