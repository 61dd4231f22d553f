"""OpenAI chat completions: the pivot itself, so every translation is the identity.

The reader and writer still exist so the proxy can treat every pair of protocols alike:
the reader turns SSE events into chunk objects (``[DONE]`` and pings into nothing), the
writer turns chunks back into ``data:`` events, hides the usage chunk from a client that
did not ask for it (``stream_options.include_usage``), and ends with ``data: [DONE]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tollway.protocols.apis import CHAT
from tollway.protocols.codec import ApiPath, Json, StreamReader, StreamWriter
from tollway.protocols.openai.wire import is_usage_only_chunk
from tollway.protocols.sse import SseEvent

DONE = "[DONE]"


class OpenAIStreamReader:
    def feed(self, event: SseEvent) -> list[Json]:
        if event.data.strip() == DONE:
            return []
        obj = event.json()
        return [obj] if isinstance(obj, dict) else []

    def end(self) -> list[Json]:
        return []


class OpenAIStreamWriter:
    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self._failed = False

    def feed(self, chunk: Json) -> list[SseEvent]:
        if not self.include_usage and is_usage_only_chunk(chunk):
            return []
        if "error" in chunk and "choices" not in chunk:
            self._failed = True
        return [SseEvent.of_json(chunk)]

    def end(self) -> list[SseEvent]:
        # OpenAI ends a failed stream with the error event, without [DONE].
        return [] if self._failed else [SseEvent.build(DONE)]


class OpenAIChat:
    """The identity codec. Translations return their input (not a copy)."""

    name = "openai"
    pivot_fields: Mapping[str, str] = {}  # (the pivot is its own request)

    def api_path(self, stream: bool, model: str) -> ApiPath:
        return ApiPath(CHAT)

    def request_to_pivot(self, body: Json) -> Json:
        return body

    def request_from_pivot(self, chat: Json) -> Json:
        return chat

    def response_to_pivot(self, body: Json) -> Json:
        return body

    def response_from_pivot(self, chat: Json) -> Json:
        return chat

    def stream_to_pivot(self) -> StreamReader:
        return OpenAIStreamReader()

    def stream_from_pivot(self, client_request: Mapping[str, Any]) -> StreamWriter:
        opts = client_request.get("stream_options")
        return OpenAIStreamWriter(isinstance(opts, dict) and opts.get("include_usage") is True)

    def error_to_pivot(self, status: int, body: bytes) -> bytes:
        return body

    def error_from_pivot(self, status: int, body: bytes) -> bytes:
        return body

    def model_ids(self, body: Any) -> list[str]:
        data = body.get("data") if isinstance(body, dict) else None
        return [m["id"] for m in data or () if isinstance(m, dict) and isinstance(m.get("id"), str)]
