"""Which of a provider's ``apiTokens`` a call goes with (``Provider.pick_token``,
``ai_proxy._affinity``): in turn, but one key (the consumer's: here, with no consumer,
the first) for a call that makes or uses what the provider keeps in the account of the
key it was made with. The consumer's own key across consumers is tested through a
gateway process in tests/system/test_proxy.py."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.support.asgi_support import RecordingUpstream, send_raw
from tollway.testing.gateway import GatewayUnderTest

KEYS = ["k-a", "k-b", "k-c"]
CHAT: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
GEMINI: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
FILE_PART = {"type": "file", "file": {"file_id": "file-abc"}}


def _gateway(up: RecordingUpstream) -> GatewayUnderTest:
    config = {
        "providers": [
            {"id": "openai", "type": "openai", "apiTokens": KEYS, "baseUrl": "http://up.test/v1"},
            {"id": "gemini", "type": "gemini", "apiTokens": KEYS, "baseUrl": "http://up.test"},
        ],
        "routes": [
            {"name": "openai", "path_prefix": "/v1/", "provider": "openai"},
            {"name": "gemini", "path_prefix": "/g/", "provider": "gemini"},
        ],
    }
    return GatewayUnderTest(orjson.dumps(config).decode(), upstream=up)


def _key(headers: tuple[tuple[str, str], ...]) -> str:
    found = dict(headers)
    return found.get("x-goog-api-key") or found["authorization"].removeprefix("Bearer ")


KEPT = [
    pytest.param("POST", "/v1/chat/completions", {**CHAT, "store": True}, id="chat-stored"),
    pytest.param(
        "POST",
        "/v1/chat/completions",
        {**CHAT, "messages": [{"role": "user", "content": [FILE_PART]}]},
        id="chat-naming-a-file",
    ),
    pytest.param("POST", "/v1/responses", {"model": "gpt-4o-mini", "input": "hi"}, id="responses-stored"),
    pytest.param(
        "POST",
        "/v1/responses",
        {"model": "gpt-4o-mini", "input": "hi", "store": False, "previous_response_id": "resp_1"},
        id="responses-continuing",
    ),
    pytest.param("GET", "/v1/responses/resp_1", None, id="response-read"),
    pytest.param("GET", "/v1/chat/completions", None, id="stored-chat-completions-listed"),
    pytest.param("GET", "/v1/chat/completions/chatcmpl-1", None, id="stored-chat-completion-read"),
    pytest.param("POST", "/v1/videos", {"model": "sora-2", "prompt": "a lighthouse"}, id="video-made"),
    pytest.param("GET", "/v1/videos/video_1", None, id="video-read"),
    pytest.param("GET", "/v1/vector_stores/vs_1", None, id="vector-store"),
    pytest.param(
        "POST",
        "/g/v1beta/models/gemini-2.0-flash:generateContent",
        {**GEMINI, "cachedContent": "cachedContents/c1"},
        id="gemini-cached-content",
    ),
    pytest.param(
        "POST",
        "/g/v1beta/models/gemini-2.0-flash:batchGenerateContent",
        {"batch": {"input_config": {"requests": {"requests": []}}}},
        id="gemini-batch",
    ),
    pytest.param(
        "POST", "/g/v1beta/cachedContents", {"model": "models/gemini-2.0-flash", **GEMINI}, id="gemini-cache-made"
    ),
]
FILE_DATA = {"fileData": {"mimeType": "application/pdf", "fileUri": "https://up.test/v1beta/files/abc"}}
KEPT.append(
    pytest.param("POST", "/g/v1beta/models/gemini-2.0-flash:generateContent",
                 {"contents": [{"role": "user", "parts": [FILE_DATA, {"text": "sum"}]}]}, id="gemini-file")
)  # fmt: skip
# A tool's parameter named file_id (a key with no id under it) names no file.
TOOL = {"type": "function", "function": {"name": "read", "parameters": {
    "type": "object", "properties": {"file_id": {"type": "string"}}}}}  # fmt: skip
ROTATED = [
    pytest.param("POST", "/v1/chat/completions", {**CHAT, "tools": [TOOL]}, id="chat-tool-taking-a-file-id"),
    pytest.param("POST", "/v1/chat/completions", CHAT, id="chat"),
    pytest.param(
        "POST", "/v1/responses", {"model": "gpt-4o-mini", "input": "hi", "store": False}, id="responses-storing-nothing"
    ),
    pytest.param("POST", "/g/v1beta/models/gemini-2.0-flash:generateContent", GEMINI, id="gemini"),
    pytest.param("POST", "/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi"}, id="embeddings"),
]


async def _keys_of(method: str, path: str, body: Any, times: int) -> list[str]:
    up = RecordingUpstream()
    gw = _gateway(up)
    for _ in range(times):
        raw = orjson.dumps(body) if body is not None else b""
        await send_raw(gw, method, path.encode(), body=raw)
    assert len(up.seen) == times, [(r.method, r.raw_path) for r in up.seen]
    return [_key(r.headers) for r in up.seen]


@pytest.mark.parametrize(("method", "path", "body"), KEPT)
async def test_a_call_on_what_the_provider_keeps_goes_with_one_key(method: str, path: str, body: Any) -> None:
    """A red team found several such calls still going in turn: a file named in a chat
    part, a Gemini cached content or batch, OpenAI's videos (404 twice in three)."""
    assert await _keys_of(method, path, body, 4) == ["k-a"] * 4


@pytest.mark.parametrize(("method", "path", "body"), ROTATED)
async def test_any_other_call_goes_in_turn(method: str, path: str, body: Any) -> None:
    """A Responses call that stores nothing and continues nothing keeps rotation, resting
    and retries on the next key (it was pinned: a red team's)."""
    assert await _keys_of(method, path, body, 4) == [*KEYS, "k-a"]
