"""A provider's whole answer (proxy/ai_proxy.py, SPEC §14), through a gateway in this
process: a success that claims JSON and is not is the provider's failure, a 502
``ai-proxy.bad_upstream_response`` billed on estimated tokens; what claims no JSON, and
a provider's own error, pass as they came; a translated success must be JSON to be
translated."""

from __future__ import annotations

import asyncio
import gc
import gzip
from typing import Any

import orjson
import pytest

from tests.support.asgi_support import RecordingUpstream, send_raw
from tollway.testing.gateway import GatewayUnderTest
from tollway.usage.record import record_of

PROMPT = "Tell me a story about a lighthouse keeper " * 20
CHAT = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]})


def gateway(upstream: RecordingUpstream) -> GatewayUnderTest:
    config = {
        "providers": [
            {"id": "openai", "type": "openai", "apiTokens": ["sk-org"], "baseUrl": "http://up.test/v1"},
            {"id": "gemini", "type": "gemini", "apiTokens": ["g-key"], "baseUrl": "http://up.test"},
        ],
        "routes": [
            {"name": "openai", "path_prefix": "/v1/", "provider": "openai"},
            {"name": "gemini", "path_prefix": "/gemini/v1/", "provider": "gemini"},
        ],
    }
    return GatewayUnderTest(orjson.dumps(config).decode(), upstream=upstream)


@pytest.mark.parametrize("route", [b"/v1", b"/gemini/v1"])
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"id": "chatcmpl-1", "choices": [{"message": '),
        ("application/json; charset=utf-8", b"<html>502 Bad Gateway</html>"),
        ("application/json", b""),
    ],
)
async def test_a_success_that_is_not_the_json_it_claims_is_a_502_billed_on_an_estimate(
    route: bytes, content_type: str, body: bytes
) -> None:
    up = RecordingUpstream(content_type=content_type, body=body)
    gw = gateway(up)
    r = await send_raw(gw, "POST", route + b"/chat/completions", body=CHAT)
    assert (r.status, r.headers["x-tollway-reason"]) == (502, "ai-proxy.bad_upstream_response")
    assert r.json()["error"]["code"] == "upstream_error"
    ex = gw.calls[-1]
    assert (ex.status, ex.reason) == (502, "ai-proxy.bad_upstream_response")
    assert ex.usage.estimated and ex.usage.input_tokens > 100
    assert [(a.provider, a.status) for a in ex.attempts] == [(ex.provider, 200)]


@pytest.mark.parametrize("content_type", ["text/plain", "text/html; charset=utf-8"])
async def test_an_answer_that_claims_no_json_passes_as_it_came_billed_on_an_estimate(content_type: str) -> None:
    """SPEC §5: where the provider gives no usage, tokens are estimated (the input from
    the request, the output from the answer's text), so limits and quotas are charged."""
    text = b"<html>" + b"a long portal page " * 100 + b"</html>"
    up = RecordingUpstream(content_type=content_type, body=text)
    gw = gateway(up)
    r = await send_raw(gw, "POST", b"/v1/chat/completions", body=CHAT)
    assert (r.status, r.body) == (200, text)
    ex = gw.calls[-1]
    assert (ex.status, ex.reason) == (200, None)
    assert ex.usage.estimated and ex.usage.input_tokens > 100 and ex.usage.output_tokens > 100


@pytest.mark.parametrize("stream", [False, True])
async def test_a_translated_success_that_is_not_json_at_all_is_a_502(stream: bool) -> None:
    """A Gemini provider (translated) answering 200 with an HTML page (a proxy in front of
    it): there is nothing to translate, so no 200 labelled JSON goes to the client."""
    up = RecordingUpstream(content_type="text/html", body=b"<html><body>oops</body></html>")
    gw = gateway(up)
    body = orjson.dumps({**orjson.loads(CHAT), "stream": stream})
    r = await send_raw(gw, "POST", b"/gemini/v1/chat/completions", body=body)
    assert (r.status, r.headers["x-tollway-reason"]) == (502, "ai-proxy.bad_upstream_response")
    assert "text/html" in r.json()["error"]["message"]
    ex = gw.calls[-1]
    assert ex.status == 502 and ex.usage.estimated and ex.usage.input_tokens > 100


async def test_a_refused_compressed_answer_is_let_go_as_its_call_ends() -> None:
    """A gzip bomb (32 MiB of zeros in 32 KiB) is refused past 100 to 1. The failure the
    call keeps holds no frames: with them the call, and the answer's bytes its frames
    read, would wait in a reference cycle for the collector's rare full pass."""
    up = RecordingUpstream(body=gzip.compress(bytes(32 << 20)), headers=((b"content-encoding", b"gzip"),))
    gw = gateway(up)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        r = await send_raw(gw, "POST", b"/v1/chat/completions", body=CHAT)
        assert (r.status, r.headers["x-tollway-reason"]) == (502, "ai-proxy.bad_upstream_response")
        assert "over 100 times" in r.json()["error"]["message"]
        assert gw.calls.pop().usage.estimated
        gc.collect()
        left_to_the_collector = [type(o).__name__ for o in gc.garbage if type(o).__name__ == "Exchange"]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert left_to_the_collector == []


async def test_a_providers_error_with_a_broken_body_keeps_its_status() -> None:
    up = RecordingUpstream(status=429, body=b"{not json")
    r = await send_raw(gateway(up), "POST", b"/v1/chat/completions", body=CHAT)
    assert r.status == 429


async def test_a_whole_json_answer_is_billed_as_reported() -> None:
    up = RecordingUpstream()
    gw = gateway(up)
    r = await send_raw(gw, "POST", b"/v1/chat/completions", body=CHAT)
    assert r.status == 200
    usage = gw.calls[-1].usage
    assert (usage.input_tokens, usage.output_tokens, usage.estimated) == (11, 2, False)


async def test_an_embedding_answered_without_usage_is_billed_on_an_estimate() -> None:
    """As for a chat answer: the provider bills the input, so the record must not say 0
    tokens exactly (and a token limit settles to the same estimate)."""
    up = RecordingUpstream(
        body=b'{"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}]}'
    )
    gw = gateway(up)
    text = "hello world " * 50
    r = await send_raw(
        gw, "POST", b"/v1/embeddings", body=orjson.dumps({"model": "text-embedding-3-small", "input": text})
    )
    assert r.status == 200
    usage = gw.calls[-1].usage
    assert usage.estimated and usage.input_tokens >= len(text) // 4 and usage.output_tokens == 0


@pytest.mark.parametrize(
    ("method", "recorded", "estimated"),
    [("generateContent", "chat", True), ("embedContent", "embeddings", True), ("countTokens", "count_tokens", False)],
)
async def test_geminis_own_methods_are_recorded_by_what_they_do_and_estimated_so(
    method: str, recorded: str, estimated: bool
) -> None:
    """A call of Gemini's own API was recorded as the model list (``models``) and, when
    its answer carried no usageMetadata, as 0 tokens exactly: generateContent is a
    chat's call (its answer's text the output's estimate), embedContent an embedding's."""
    answer: dict[str, object] = {"candidates": [{"content": {"role": "model", "parts": [{"text": "A keeper " * 40}]}}]}
    if method != "generateContent":
        answer = {"embedding": {"values": [0.1, 0.2]}} if method == "embedContent" else {"totalTokens": 230}
    gw = gateway(RecordingUpstream(body=orjson.dumps(answer)))
    body = orjson.dumps({"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]})
    r = await send_raw(gw, "POST", f"/gemini/v1/models/gemini-2.5-flash:{method}".encode(), body=body)
    assert r.status == 200
    ex = gw.calls[-1]
    record = record_of(ex)
    assert (record.api, record.model_requested, record.tokens_estimated) == (recorded, "gemini-2.5-flash", estimated)
    if estimated:
        assert record.input_tokens >= len(PROMPT) // 4
        assert record.output_tokens == (90 if method == "generateContent" else 0)  # 360 characters
    else:
        assert (record.input_tokens, record.output_tokens) == (0, 0)


@pytest.mark.parametrize(
    ("kind", "name"),
    [("openai", "max_completion_tokens"), ("azure", "max_completion_tokens"), ("mistral", "max_tokens"),
     ("deepseek", "max_tokens"), ("ollama", "max_tokens")],
)  # fmt: skip
async def test_a_translated_limit_goes_under_the_name_the_provider_takes(kind: str, name: str) -> None:
    """An Anthropic client's max_tokens: OpenAI's reasoning models refuse max_tokens, and
    Mistral refuses max_completion_tokens (422), DeepSeek ignores it."""
    provider: dict[str, object] = {"id": "p", "type": kind, "apiTokens": ["k"], "baseUrl": "http://up.test/v1"}
    if kind == "azure":
        provider = {**provider, "baseUrl": "http://up.test/openai/deployments/d", "apiVersion": "2024-10-21"}
    config = {"providers": [provider], "routes": [{"name": "r", "path_prefix": "/v1/", "provider": "p"}]}
    up = RecordingUpstream()
    gw = GatewayUnderTest(orjson.dumps(config).decode(), upstream=up)
    body = {"model": "m", "max_tokens": 256, "messages": [{"role": "user", "content": "hi"}]}
    r = await send_raw(gw, "POST", b"/v1/messages", body=orjson.dumps(body))
    assert r.status == 200, r.body
    sent = orjson.loads(up.seen[0].body)
    (other,) = {"max_tokens", "max_completion_tokens"} - {name}
    assert sent[name] == 256 and other not in sent


async def test_a_translated_claude_stream_broken_before_its_final_count_is_recorded_estimated() -> None:
    """An OpenAI client's stream from a Claude provider that breaks after message_start
    and some text: the output count is message_start's placeholder, so the record says
    estimated (a judge's Low: it said 1 token, not estimated)."""
    sse = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","model":"claude-x",'
        b'"usage":{"input_tokens":30,"output_tokens":1}}}\n\n'
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Once"}}\n\n'
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    up = RecordingUpstream(content_type="text/event-stream", body=sse)
    config = {
        "providers": [{"id": "claude", "type": "claude", "apiTokens": ["sk-ant"], "baseUrl": "http://up.test"}],
        "routes": [{"name": "chat", "path_prefix": "/v1/", "provider": "claude"}],
    }
    gw = GatewayUnderTest(orjson.dumps(config).decode(), upstream=up)
    body = orjson.dumps({"model": "claude-x", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    r = await send_raw(gw, "POST", b"/v1/chat/completions", body=body)
    assert b"Overloaded" in r.body
    usage = gw.calls[-1].usage
    assert usage.input_tokens == 30 and usage.estimated


GEMINI_429 = orjson.dumps(
    {
        "error": {
            "code": 429,
            "message": "Resource has been exhausted",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "6.2s"},
            ],
        }
    }
)


@pytest.mark.parametrize(("given", "said"), [((), "7"), (((b"retry-after", b"30"),), "30")])
async def test_geminis_retry_delay_reaches_a_translated_client_as_retry_after(
    given: tuple[tuple[bytes, bytes], ...], said: str
) -> None:
    """Gemini says how long to wait in its 429 body's RetryInfo, in no header; an OpenAI
    client's SDK backs off by Retry-After alone, and got none (a judge's Medium). A
    header the provider did send stands."""
    up = RecordingUpstream(status=429, body=GEMINI_429, headers=given)
    r = await send_raw(gateway(up), "POST", b"/gemini/v1/chat/completions", body=CHAT)
    assert r.status == 429 and r.headers["retry-after"] == said
    assert r.json()["error"]["message"] == "Resource has been exhausted"


async def test_a_translation_refusal_names_the_field_as_the_client_sent_it() -> None:
    """An Anthropic client's disable_parallel_tool_use has no Gemini equivalent: the
    refusal named the pivot's parallel_tool_calls, a field the client never sent (a
    judge's Low)."""
    up = RecordingUpstream()
    body = orjson.dumps(
        {
            "model": "gemini-2.5-flash",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {}}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        }
    )
    r = await send_raw(gateway(up), "POST", b"/gemini/v1/messages", body=body)
    assert r.status == 400, r.body
    message = r.json()["error"]["message"]
    assert message.startswith("tool_choice.disable_parallel_tool_use cannot be sent to Gemini"), message
    assert up.seen == []


async def test_a_gemini_stream_as_a_json_array_is_billed_by_its_last_usage() -> None:
    """streamGenerateContent without alt=sse answers its chunks as one JSON array: read
    as an object alone, it was billed nothing (a judge's High: budgets, token limits and
    quotas never settled). The last chunk's usageMetadata stands (Gemini's are running
    totals)."""
    chunks = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Once"}]}}],
         "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 1, "totalTokenCount": 101}},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": " upon"}]}, "finishReason": "STOP"}],
         "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 20, "thoughtsTokenCount": 30,
                           "cachedContentTokenCount": 40, "totalTokenCount": 150},
         "modelVersion": "gemini-2.5-flash"},
    ]  # fmt: skip
    gw = gateway(RecordingUpstream(body=orjson.dumps(chunks)))
    body = orjson.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    r = await send_raw(gw, "POST", b"/gemini/v1/models/gemini-2.5-flash:streamGenerateContent", body=body)
    assert r.status == 200 and r.json() == chunks
    record = record_of(gw.calls[-1])
    assert (record.stream, record.input_tokens, record.output_tokens) == (True, 100, 50)
    assert (record.cached_tokens, record.reasoning_tokens, record.tokens_estimated) == (40, 30, False)


async def test_a_model_in_a_gemini_body_is_not_the_model_the_path_runs() -> None:
    """Gemini runs the path's model: a body naming an allowed, cheap one decided the
    allow-list, the record and the price while the path's was served (a judge's High)."""
    up = RecordingUpstream(body=orjson.dumps({"candidates": []}))
    gw = gateway(up)
    body = orjson.dumps({"model": "gemini-2.5-flash", "contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    r = await send_raw(gw, "POST", b"/gemini/v1/models/gemini-2.5-pro:generateContent", body=body)
    assert r.status == 200
    assert up.seen[-1].raw_path.endswith(b"/models/gemini-2.5-pro:generateContent")
    assert gw.calls[-1].model_requested == "gemini-2.5-pro"


async def test_a_stream_a_plugin_cuts_short_is_billed_an_estimate() -> None:
    """ai-data-masking ends a stream whose answer says a deny word; the provider, still
    generating, reported nothing yet: the record said 0 tokens, not estimated (a judge's
    Medium). What was read is estimated, as for any stream that did not run to its end."""
    chunks = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Once upon a "}]}}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "nightingale sang"}]}}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": " all night."}]}, "finishReason": "STOP"}],
         "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 12, "totalTokenCount": 112}},
    ]  # fmt: skip
    later = asyncio.Event()

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for i, chunk in enumerate(chunks):
            if i == 2:
                await later.wait()  # the usage comes only after the gateway cut the stream
            await send({"type": "http.response.body", "body": b"data: " + orjson.dumps(chunk) + b"\r\n\r\n",
                        "more_body": True})  # fmt: skip
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    config = {
        "providers": [{"id": "gemini", "type": "gemini", "apiTokens": ["g-key"], "baseUrl": "http://up.test"}],
        "routes": [{"name": "gemini", "path_prefix": "/gemini/", "provider": "gemini"}],
        "plugins": [{"name": "ai-data-masking", "defaultConfig": {"deny_words": ["nightingale"]}}],
    }
    gw = GatewayUnderTest(orjson.dumps(config).decode(), upstream=slow)
    body = orjson.dumps({"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]})
    path = b"/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    r = await send_raw(gw, "POST", path, body=body, query=b"alt=sse")
    later.set()
    assert b"Sensitive words" in r.body and b"nightingale" not in r.body
    record = record_of(gw.calls[-1])
    assert record.reason == "ai-data-masking.denied" and record.tokens_estimated
    assert record.input_tokens >= len(PROMPT) // 4 and record.output_tokens > 0


@pytest.mark.parametrize("method", ["generateContent:x", "generateContent:generateContent", "generateContent;x"])
async def test_a_gemini_path_whose_method_cannot_be_read_goes_nowhere(method: str) -> None:
    """``…/models/gemini-2.5-pro:generateContent:x`` named no model the gateway could read,
    so allow_models, the limits and a budget never saw one, and it was sent on (a judge's
    Low)."""
    up = RecordingUpstream()
    body = orjson.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    r = await send_raw(gateway(up), "POST", f"/gemini/v1/models/gemini-2.5-pro:{method}".encode(), body=body)
    assert r.status == 400 and up.seen == []


async def test_stored_chat_completions_are_not_served_to_a_consumer() -> None:
    """OpenAI serves a completion made with store: true, its messages and the list of
    all of them to any holder of the organisation's key: one consumer read another's
    whole chat and listed everyone's (a judge's High). The gateway does not know whose
    each is, so a consumer gets none of them; making chat calls is unchanged."""
    config = {
        "providers": [{"id": "openai", "type": "openai", "apiTokens": ["sk-org"], "baseUrl": "http://up.test/v1"}],
        "routes": [{"name": "openai", "path_prefix": "/v1/", "provider": "openai"}],
        "plugins": [{"name": "key-auth", "defaultConfig": {"keys": ["authorization"],
                     "consumers": [{"name": "bob", "credential": "k-bob"}]}}],
    }  # fmt: skip
    up = RecordingUpstream()
    gw = GatewayUnderTest(orjson.dumps(config).decode(), upstream=up)
    bob = [(b"host", b"gw"), (b"authorization", b"k-bob")]
    for method, path in (
        ("GET", b"/v1/chat/completions"),
        ("GET", b"/v1/chat/completions/chatcmpl-1"),
        ("GET", b"/v1/chat/completions/chatcmpl-1/messages"),
        ("POST", b"/v1/chat/completions/chatcmpl-1"),
        ("DELETE", b"/v1/chat/completions/chatcmpl-1"),
        ("GET", b"/v1/Chat/Completions/chatcmpl-1"),
    ):
        r = await send_raw(gw, method, path, headers=bob, body=b'{"metadata": {}}' if method == "POST" else b"")
        assert (r.status, r.headers["x-tollway-reason"]) == (404, "ai-proxy.not_owner"), (method, path, r.body)
    assert up.seen == []
    r = await send_raw(gw, "POST", b"/v1/chat/completions", headers=bob, body=CHAT)
    assert r.status == 200 and len(up.seen) == 1
