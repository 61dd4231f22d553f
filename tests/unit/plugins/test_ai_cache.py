"""ai-cache through a gateway in this process (plugins/ai_cache): what is a hit, what is
stored, and the shape a hit answers in. The provider is the built-in mock model, behind
a counter; the black-box tests with real SDKs are in tests/system/test_ai_cache.py."""

from __future__ import annotations

import struct
from typing import Any

import httpx
import orjson
import pydantic
import pytest
from openai.types.responses import ResponseStreamEvent

from tollway.cache import StoredAnswer, UnusableAnswer
from tollway.config.schema import Price
from tollway.mockllm import create_app as create_mock_app
from tollway.plugins.ai_cache import answers
from tollway.plugins.ai_cache.answers import reply_of
from tollway.plugins.ai_cache.key import cache_key
from tollway.plugins.ai_cache.shapes import chunks_of, completion_of
from tollway.state.memory import MemoryStateStore
from tollway.testing.gateway import GatewayUnderTest
from tollway.usage.pricing import PriceTable
from tollway.usage.record import record_of

CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
MESSAGES = {"model": "mock-claude", "max_tokens": 64, "messages": [{"role": "user", "content": "Name a colour."}]}
RESPONSES = {"model": "mock-claude", "input": "Name a river."}


class CountingUpstream:
    """The mock model, counting the model calls (chat, messages) it answers."""

    def __init__(self) -> None:
        self.app = create_mock_app()
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith(("/chat/completions", "/messages")):
            self.calls += 1
        await self.app(scope, receive, send)


def gateway(
    cache: dict[str, Any] | None = None, *, plugins: list[dict[str, Any]] | None = None
) -> tuple[GatewayUnderTest, CountingUpstream]:
    upstream = CountingUpstream()
    config = {
        "providers": [
            {"id": "m", "type": "openai", "apiTokens": ["sk"], "baseUrl": "http://up.test/v1"},
            {"id": "c", "type": "claude", "apiTokens": ["sk"], "baseUrl": "http://up.test"},
        ],
        "routes": [{"name": "v1", "path_prefix": "/v1/", "provider": "m", "model_providers": {"mock-claude": "c"}}],
        "plugins": [*(plugins or []), {"name": "ai-cache", "defaultConfig": cache or {}}],
    }
    return GatewayUnderTest(orjson.dumps(config).decode(), upstream=upstream), upstream


async def post(gw: GatewayUnderTest, path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://gw") as client:
        return await client.post(path, json=body, headers=headers)


def events(r: httpx.Response) -> list[Any]:
    out = []
    for block in r.text.split("\n\n"):
        data = "\n".join(line[6:] for line in block.split("\n") if line.startswith("data: "))
        if data:
            out.append(data if data == "[DONE]" else orjson.loads(data))
    return out


def chat_text(r: httpx.Response) -> str:
    return "".join(
        c["choices"][0]["delta"].get("content") or "" for c in events(r) if isinstance(c, dict) and c.get("choices")
    )


async def test_the_same_request_twice_costs_one_provider_call_and_the_second_is_the_same_answer() -> None:
    gw, up = gateway()
    first = await post(gw, "/v1/chat/completions", CHAT)
    second = await post(gw, "/v1/chat/completions", CHAT)
    assert first.status_code == second.status_code == 200
    assert up.calls == 1
    assert (first.headers["x-tollway-cache"], second.headers["x-tollway-cache"]) == ("miss", "hit")
    assert second.json() == first.json()
    miss, hit = gw.calls
    assert (miss.cache, hit.cache) == ("miss", "hit")
    assert (hit.usage.input_tokens, hit.usage.output_tokens) == (miss.usage.input_tokens, miss.usage.output_tokens)
    assert hit.provider is None and hit.attempts == [] and hit.model_upstream == miss.model_upstream
    assert not hit.usage.reported  # limits that settle on reported usage charge a hit nothing


async def test_a_stream_is_replayed_as_a_stream_and_a_whole_answer_as_a_whole_one() -> None:
    gw, up = gateway()
    streamed = {**CHAT, "stream": True}
    first = await post(gw, "/v1/chat/completions", streamed)
    second = await post(gw, "/v1/chat/completions", streamed)
    whole = await post(gw, "/v1/chat/completions", CHAT)
    assert up.calls == 1
    assert second.headers["x-tollway-cache"] == "hit" and second.headers["content-type"].startswith("text/event-stream")
    assert events(second) == events(first) and events(second)[-1] == "[DONE]"
    assert whole.headers["x-tollway-cache"] == "hit"
    assert whole.json()["choices"][0]["message"]["content"] == chat_text(first)
    assert whole.json()["object"] == "chat.completion"


async def test_a_whole_answer_is_replayed_as_a_stream_when_asked_with_usage_if_asked() -> None:
    gw, up = gateway()
    whole = await post(gw, "/v1/chat/completions", CHAT)
    stream = await post(gw, "/v1/chat/completions", {**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert up.calls == 1 and stream.headers["x-tollway-cache"] == "hit"
    assert chat_text(stream) == whole.json()["choices"][0]["message"]["content"]
    assert events(stream)[-2]["usage"] == whole.json()["usage"] and events(stream)[-1] == "[DONE]"


async def test_a_stored_stream_gets_its_usage_chunk_only_for_a_client_that_asks() -> None:
    gw, up = gateway()
    await post(gw, "/v1/chat/completions", {**CHAT, "stream": True})
    asked = await post(gw, "/v1/chat/completions", {**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    plain = await post(gw, "/v1/chat/completions", {**CHAT, "stream": True})
    assert up.calls == 1
    usage = next(c for c in events(asked) if isinstance(c, dict) and not c["choices"])["usage"]
    assert usage["completion_tokens"] > 0
    assert all(c == "[DONE]" or c["choices"] for c in events(plain))


async def test_anthropic_messages_hit_in_their_own_shape_whole_and_streamed() -> None:
    gw, up = gateway()
    first = await post(gw, "/v1/messages", MESSAGES)
    second = await post(gw, "/v1/messages", MESSAGES)
    streamed = await post(gw, "/v1/messages", {**MESSAGES, "stream": True})
    assert up.calls == 1
    assert second.json() == first.json() and second.json()["type"] == "message"
    kinds = [e["type"] for e in events(streamed)]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    text = "".join(e["delta"].get("text", "") for e in events(streamed) if e["type"] == "content_block_delta")
    assert text == first.json()["content"][0]["text"]
    # As Anthropic streams it: the prompt's tokens in message_start, the output's at the end.
    start, delta = events(streamed)[0], next(e for e in events(streamed) if e["type"] == "message_delta")
    assert start["message"]["usage"]["input_tokens"] == first.json()["usage"]["input_tokens"] > 0
    assert start["message"]["usage"]["output_tokens"] == 0
    assert delta["usage"]["output_tokens"] == first.json()["usage"]["output_tokens"]


async def test_responses_api_hits_whole_and_streamed() -> None:
    gw, up = gateway()
    first = await post(gw, "/v1/responses", RESPONSES)
    second = await post(gw, "/v1/responses", RESPONSES)
    streamed = await post(gw, "/v1/responses", {**RESPONSES, "stream": True})
    assert first.status_code == 200, first.text
    assert up.calls == 1 and second.json() == first.json()
    replayed = events(streamed)
    # The stream the API sends for the stored answer: each event valid to the OpenAI
    # SDK's own types, numbered in order, the last one the stored response itself.
    # (The events that carry the response are checked against the stored one instead.)
    adapter = pydantic.TypeAdapter(ResponseStreamEvent)
    assert all(adapter.validate_python(e) for e in replayed if "response" not in e)
    assert [e["type"] for e in replayed][:2] == ["response.created", "response.in_progress"]
    assert replayed[0]["response"] == {**first.json(), "status": "in_progress", "output": [], "usage": None}
    assert [e["sequence_number"] for e in replayed] == list(range(len(replayed)))
    assert replayed[-1] == {
        "type": "response.completed",
        "sequence_number": len(replayed) - 1,
        "response": first.json(),
    }
    text = first.json()["output"][0]["content"][0]["text"]
    assert [e["delta"] for e in replayed if e["type"] == "response.output_text.delta"] == [text]


def test_a_whole_answer_made_from_a_stream_keeps_what_every_chunk_says_of_the_answer() -> None:
    choice = {"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m", "system_fingerprint": "fp_1",
             "service_tier": "default", "choices": [choice]}  # fmt: skip
    whole = completion_of([chunk])
    assert (whole["system_fingerprint"], whole["service_tier"], whole["id"], whole["created"]) == (
        "fp_1",
        "default",
        "c1",
        7,
    )
    assert whole["choices"][0]["message"]["content"] == "hi"


def test_a_stream_made_from_a_whole_answer_repeats_in_each_chunk_what_it_says_of_itself() -> None:
    message = {"role": "assistant", "content": "hi"}
    whole = {"id": "c1", "object": "chat.completion", "created": 7, "model": "m", "system_fingerprint": "fp_1",
             "service_tier": "default",
             "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}  # fmt: skip
    chunks = chunks_of(whole)
    assert len(chunks) == 4  # the role, the text, the finish, the usage
    assert {(c["system_fingerprint"], c["service_tier"], c["id"], c["created"]) for c in chunks} == {
        ("fp_1", "default", "c1", 7)
    }
    assert completion_of(chunks) == whole


async def test_a_different_question_model_or_sampling_is_a_different_entry() -> None:
    gw, up = gateway()
    await post(gw, "/v1/chat/completions", CHAT)
    await post(gw, "/v1/chat/completions", {**CHAT, "temperature": 0.2})
    await post(gw, "/v1/chat/completions", {**CHAT, "model": "mock-gpt-mini"})
    await post(gw, "/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": "And of Spain?"}]})
    # Delivery and labels are not part of the key.
    await post(gw, "/v1/chat/completions", {**CHAT, "user": "someone", "metadata": {"a": "b"}})
    assert up.calls == 4


async def test_last_question_keys_on_the_last_user_message_alone() -> None:
    gw, up = gateway({"cacheKeyStrategy": "lastQuestion"})
    await post(gw, "/v1/chat/completions", CHAT)
    other_system = {**CHAT, "messages": [{"role": "system", "content": "Be terse."}, *CHAT["messages"]]}
    r = await post(gw, "/v1/chat/completions", other_system)
    assert up.calls == 1 and r.headers["x-tollway-cache"] == "hit"


async def test_disabled_caches_nothing_and_says_nothing() -> None:
    gw, up = gateway({"cacheKeyStrategy": "disabled"})
    await post(gw, "/v1/chat/completions", CHAT)
    r = await post(gw, "/v1/chat/completions", CHAT)
    assert up.calls == 2 and "x-tollway-cache" not in r.headers and gw.calls[1].cache is None


async def test_cache_control_no_cache_skips_the_lookup_and_no_store_the_store() -> None:
    gw, up = gateway()
    await post(gw, "/v1/chat/completions", CHAT, **{"cache-control": "no-store"})
    skipped = await post(gw, "/v1/chat/completions", CHAT, **{"cache-control": "no-cache"})
    hit = await post(gw, "/v1/chat/completions", CHAT)
    assert up.calls == 2
    assert skipped.headers["x-tollway-cache"] == "miss" and gw.calls[1].cache == "skip"
    assert hit.headers["x-tollway-cache"] == "hit"
    await post(gw, "/v1/chat/completions", CHAT, **{"x-higress-skip-ai-cache": "on"})
    assert up.calls == 3


async def test_errors_and_cut_streams_are_never_stored() -> None:
    gw, up = gateway()
    failed = await post(gw, "/v1/chat/completions", CHAT, **{"x-mock-status": "500"})
    assert failed.status_code == 500
    cut = await post(gw, "/v1/chat/completions", {**CHAT, "stream": True}, **{"x-mock-drop": "mid-stream"})
    assert "[DONE]" not in cut.text
    r = await post(gw, "/v1/chat/completions", CHAT)
    assert r.headers["x-tollway-cache"] == "miss" and up.calls == 3


async def test_a_request_the_gateway_refuses_is_neither_looked_up_nor_stored() -> None:
    gw, up = gateway()
    r = await post(gw, "/v1/chat/completions", {"messages": CHAT["messages"]})
    assert r.status_code == 400 and "x-tollway-cache" not in r.headers and up.calls == 0


class PromptCachingUpstream:
    """An Anthropic provider whose answers wrote 500 tokens to its prompt cache (300 of
    them to its one-hour cache) and read 1,000 from it: tokens priced apart from plain
    input."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = orjson.dumps(
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "mock-claude",
                "content": [{"type": "text", "text": "Blue."}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 20,
                    "cache_creation_input_tokens": 500,
                    "cache_creation": {"ephemeral_5m_input_tokens": 200, "ephemeral_1h_input_tokens": 300},
                    "cache_read_input_tokens": 1000,
                    "output_tokens": 3,
                },
            }
        )
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


async def test_a_hit_saves_what_the_call_cost_cache_writes_priced_as_cache_writes() -> None:
    # The record of a hit says in cost_saved_usd what the stored call cost: its prompt
    # cache writes at their own prices (here four times plain input, eight for the
    # one-hour cache's), not as plain input nor all at the five-minute price.
    config = {
        "providers": [{"id": "c", "type": "claude", "apiTokens": ["sk"], "baseUrl": "http://up.test"}],
        "routes": [{"name": "v1", "path_prefix": "/v1/", "provider": "c"}],
        "plugins": [{"name": "ai-cache", "defaultConfig": {}}],
    }
    gw = GatewayUnderTest(orjson.dumps(config).decode(), upstream=PromptCachingUpstream())
    first = await post(gw, "/v1/messages", MESSAGES)
    second = await post(gw, "/v1/messages", MESSAGES)
    assert (first.headers["x-tollway-cache"], second.headers["x-tollway-cache"]) == ("miss", "hit")
    miss, hit = gw.calls
    assert miss.usage.cache_write_tokens == hit.usage.cache_write_tokens == 500
    assert miss.usage.cache_write_1h_tokens == hit.usage.cache_write_1h_tokens == 300
    price = Price(
        input_per_mtok=3.0,
        output_per_mtok=15.0,
        cached_input_per_mtok=0.3,
        cache_write_per_mtok=12.0,
        cache_write_1h_per_mtok=24.0,
    )
    paid, saved = (
        record_of(miss, PriceTable({"mock-claude": price})),
        record_of(hit, PriceTable({"mock-claude": price})),
    )
    assert paid.cost_usd == pytest.approx((20 * 3.0 + 200 * 12.0 + 300 * 24.0 + 1000 * 0.3 + 3 * 15.0) / 1e6)
    assert saved.cost_usd == 0 and saved.cost_saved_usd == paid.cost_usd


WINDOW = "ai-token-ratelimit:t:0:limit_by_header:x-user:60:*"  # the rule "t", one counter for every "*" key


class UsagelessUpstream:
    """An OpenAI-compatible provider that reports no usage: the gateway estimates it."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        answer = {"id": "c1", "object": "chat.completion", "created": 0, "model": "mock-gpt",
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."},
                               "finish_reason": "stop"}]}  # fmt: skip
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": orjson.dumps(answer)})


async def test_a_hit_of_an_estimated_answer_is_estimated_and_charges_no_token_limit() -> None:
    """What a hit saves is only as exact as the stored call's tokens: its record says
    they were estimated. No limit is charged for it either way (no provider billed it)."""
    limit = {
        "name": "ai-token-ratelimit",
        "defaultConfig": {
            "rule_name": "t",
            "limit_by_header": "x-user",
            "limit_keys": [{"key": "*", "token_per_minute": 10**6}],
        },
    }
    config = {
        "providers": [{"id": "m", "type": "openai", "apiTokens": ["sk"], "baseUrl": "http://up.test/v1"}],
        "routes": [{"name": "v1", "path_prefix": "/v1/", "provider": "m"}],
        "plugins": [limit, {"name": "ai-cache", "defaultConfig": {}}],
    }  # fmt: skip
    gw = GatewayUnderTest(orjson.dumps(config).decode(), upstream=UsagelessUpstream())
    first = await post(gw, "/v1/chat/completions", CHAT, **{"x-user": "u"})
    second = await post(gw, "/v1/chat/completions", CHAT, **{"x-user": "u"})
    assert (first.headers["x-tollway-cache"], second.headers["x-tollway-cache"]) == ("miss", "hit")
    miss, hit = gw.calls
    assert miss.usage.estimated and hit.usage.estimated and not hit.usage.reported
    assert (hit.usage.input_tokens, hit.usage.output_tokens) == (miss.usage.input_tokens, miss.usage.output_tokens)
    assert record_of(hit, PriceTable()).tokens_estimated is True
    store = gw.services.state
    assert isinstance(store, MemoryStateStore)
    # The window holds the miss's estimate alone: the hit's reservation was given back.
    assert store.window_used(WINDOW) == miss.usage.input_tokens + miss.usage.output_tokens


def test_an_entry_stored_before_cache_writes_were_kept_is_still_read() -> None:
    # Entries in Redis outlive an upgrade: one with four usage numbers reads as no writes.
    current = StoredAnswer("chat", False, b"{}", (10, 2, 4, 1, 3, 2), "m")
    head = orjson.dumps({"api": "chat", "streamed": False, "usage": [10, 2, 4, 1], "model": "m"})
    older = current.encode()[:4] + struct.pack("<I", len(head)) + head + b"{}"
    assert StoredAnswer.decode(current.encode()) == current
    assert StoredAnswer.decode(older).usage == (10, 2, 4, 1, 0, 0)
    # One stored before the one-hour part of its cache writes was kept: none of them.
    five = older.replace(b"[10,2,4,1]", b"[10,2,4,1,3]").replace(
        struct.pack("<I", len(head)), struct.pack("<I", len(head) + 2)
    )
    assert StoredAnswer.decode(five).usage == (10, 2, 4, 1, 3, 0)
    with pytest.raises(UnusableAnswer):
        StoredAnswer.decode(older.replace(b"[10,2,4,1]", b"[10,2,4]"))


@pytest.mark.parametrize(
    ("usage", "written"),
    [((10, 2, 4, 1, 3, 2), [10, 2, 4, 1, 3, 2]), ((10, 2, 4, 1, 3, 0), [10, 2, 4, 1, 3]),
     ((10, 2, 4, 1, 0, 0), [10, 2, 4, 1]), ((0, 0, 0, 0, 0, 0), [0, 0, 0, 0])],
)  # fmt: skip
def test_an_entry_is_written_as_an_older_replica_can_read_it(usage: tuple[int, ...], written: list[int]) -> None:
    """In a rolling upgrade old and new replicas share Redis: a version before the
    one-hour count read six counts as no entry (a miss, a warning each lookup, the provider
    called again: a judge's finding). Trailing zero counts are left out, down to the four
    every version reads; this version reads them back as they were."""
    entry = StoredAnswer("chat", False, b"{}", usage, "m")  # type: ignore[arg-type]
    raw = entry.encode()
    (size,) = struct.unpack_from("<I", raw, 4)
    assert orjson.loads(raw[8 : 8 + size])["usage"] == written
    assert StoredAnswer.decode(raw) == entry


# --- judge S: what a semantic partition holds, group scopes, usage chunks, finish -----------


def _turn(text: str, *parts: dict[str, Any]) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": text}, *parts]}]}


def test_a_question_s_image_or_tool_result_is_part_of_its_semantic_partition() -> None:
    # The whole content of the question's turn was taken out of the partition: a question
    # about another image (another tool result) met this one's entry and got its answer.
    def partition(body: dict[str, Any], api: str = "chat") -> tuple[str, str | None]:
        key = cache_key(api, body, "m", "request", "s", semantic=True)
        assert key is not None
        return key.partition, key.question

    cat = _turn("describe this image", {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}})
    bill = _turn("describe this image", {"type": "image_url", "image_url": {"url": "https://x.test/bill.png"}})
    reworded = _turn("what is in this picture", {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}})
    assert partition(cat)[0] != partition(bill)[0]
    assert partition(cat)[0] == partition(reworded)[0]  # a paraphrase about the same image still may hit
    assert partition(cat)[1] == "describe this image"

    def balance(amount: str) -> dict[str, Any]:
        tool = {"type": "tool_result", "tool_use_id": "t1", "content": f"balance: {amount} USD"}
        content = [tool, {"type": "text", "text": "sum it up"}]
        return {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": content}]}

    assert partition(balance("10"), "messages")[0] != partition(balance("999999"), "messages")[0]


def test_a_question_as_a_string_or_as_text_parts_is_one_semantic_partition() -> None:
    # SDKs send the same question either way: two partitions, and a paraphrase sent in the
    # other shape never met the stored one.
    def partition(content: Any) -> str:
        key = cache_key("chat", {"model": "m", "messages": [{"role": "user", "content": content}]}, "m", "request",
                        "s", semantic=True)  # fmt: skip
        assert key is not None and key.question == "what is a gateway"
        return key.partition

    parts = [{"type": "text", "text": "what is a "}, {"type": "text", "text": "gateway"}]
    assert (
        partition("what is a gateway") == partition(parts) == partition([{"type": "text", "text": "what is a gateway"}])
    )


async def test_group_scope_keeps_a_group_named_with_a_comma_apart_from_two_groups() -> None:
    # "staff,x" (one group) and ["staff", "x"] (two) were one scope: joined by commas.
    auth = {
        "name": "key-auth",
        "defaultConfig": {
            "keys": ["authorization"],
            "consumers": [
                {"name": "dave", "credential": "k-dave", "groups": ["staff", "x"]},
                {"name": "eve", "credential": "k-eve", "groups": ["staff,x"]},
                {"name": "fay", "credential": "k-fay", "groups": ["x", "staff"]},
            ],
        },
    }
    gw, up = gateway({"scope": "group"}, plugins=[auth])
    dave = await post(gw, "/v1/chat/completions", CHAT, authorization="k-dave")
    eve = await post(gw, "/v1/chat/completions", CHAT, authorization="k-eve")
    fay = await post(gw, "/v1/chat/completions", CHAT, authorization="k-fay")
    assert [r.headers["x-tollway-cache"] for r in (dave, eve, fay)] == ["miss", "miss", "hit"]
    assert up.calls == 2


async def test_a_stream_with_its_usage_chunk_is_replayed_as_it_was_and_without_it_when_not_asked() -> None:
    # The usage chunk was dropped when stored and made again from the counts alone: the
    # hit's lacked service_tier, system_fingerprint and the token details the call's had.
    gw, up = gateway()
    asked = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    first = await post(gw, "/v1/chat/completions", asked)
    second = await post(gw, "/v1/chat/completions", asked)
    plain = await post(gw, "/v1/chat/completions", {**CHAT, "stream": True})
    assert up.calls == 1 and second.headers["x-tollway-cache"] == "hit"
    usage_chunk = events(first)[-2]
    assert (
        usage_chunk["choices"] == []
        and "service_tier" in usage_chunk
        and "prompt_tokens_details" in usage_chunk["usage"]
    )
    assert second.content == first.content
    assert events(plain) == [e for e in events(first) if e is not usage_chunk and e != usage_chunk]


async def test_a_usage_chunk_made_for_an_entry_stored_without_one_says_what_its_chunks_say() -> None:
    choice = {"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 5, "model": "m", "service_tier": "default",
             "system_fingerprint": "fp", "choices": [choice]}  # fmt: skip
    payload = b"data: " + orjson.dumps(chunk) + b"\n\ndata: [DONE]\n\n"
    stored = StoredAnswer("chat", True, payload, (3, 1, 0, 0, 0, 0), "m")
    reply = reply_of(stored, True, {"stream_options": {"include_usage": True}}, [])
    assert reply.events is not None
    replayed = await reply.events.next()
    assert replayed is not None
    made = replayed[1].json()
    assert made["service_tier"] == "default" and made["system_fingerprint"] == "fp" and made["choices"] == []
    assert made["usage"]["prompt_tokens"] == 3 and made["usage"]["completion_tokens"] == 1
    assert made["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    assert made["usage"]["completion_tokens_details"] == {"reasoning_tokens": 0}


class UnfinishedStreamUpstream:
    """A provider whose stream ends with ``[DONE]`` but never says the answer finished."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        chunks = [{"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "mock-gpt",
                   "choices": [{"index": 0, "delta": {"content": "part"}, "finish_reason": None}]}]  # fmt: skip
        body = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": body})


async def test_a_stream_that_never_said_the_answer_finished_is_not_stored() -> None:
    config = {
        "providers": [{"id": "m", "type": "openai", "apiTokens": ["sk"], "baseUrl": "http://up.test/v1"}],
        "routes": [{"name": "v1", "path_prefix": "/v1/", "provider": "m"}],
        "plugins": [{"name": "ai-cache", "defaultConfig": {}}],
    }
    gw = GatewayUnderTest(orjson.dumps(config).decode(), upstream=UnfinishedStreamUpstream())
    first = await post(gw, "/v1/chat/completions", {**CHAT, "stream": True})
    second = await post(gw, "/v1/chat/completions", {**CHAT, "stream": True})
    assert first.status_code == 200 and chat_text(first) == "part"
    assert second.headers["x-tollway-cache"] == "miss"


@pytest.mark.parametrize(
    ("api", "body", "whole"),
    [
        ("chat", {"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]}, True),
        ("chat", {"error": {"message": "inside a 200"}}, False),
        ("messages", {"type": "message", "content": [], "stop_reason": "end_turn"}, True),
        ("messages", {"type": "error", "error": {"type": "overloaded_error"}}, False),
        ("responses", {"object": "response", "status": "completed", "output": []}, True),
        # Its items say completed; the response itself does not (a judge's Low).
        (
            "responses",
            {"object": "response", "status": "incomplete", "output": [{"type": "message", "status": "completed"}]},
            False,
        ),
        ("responses", {"error": {"message": "x"}, "status": "failed"}, False),
    ],
)
def test_only_a_finished_answer_is_complete_enough_to_store(api: str, body: dict[str, Any], whole: bool) -> None:
    assert answers.complete(api, orjson.dumps(body)) is whole


@pytest.mark.parametrize(
    ("path", "question"),
    [
        (
            "/v1/chat/completions",
            lambda text: {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]},
        ),
        (
            "/v1/messages",
            lambda text: {"model": "mock-claude", "max_tokens": 20, "messages": [{"role": "user", "content": text}]},
        ),
        ("/v1/responses", lambda text: {"model": "mock-claude", "input": text}),
    ],
)
async def test_a_question_is_the_clients_not_the_turn_a_decorator_appends(path: str, question: Any) -> None:
    """A judge's High: with ``lastQuestion`` (Higress's default) and a decorator's
    ``append`` (its headline use), the last user message was always the appended one,
    so every question got the first one's answer."""
    decorator = {
        "name": "ai-prompt-decorator",
        "defaultConfig": {
            "prepend": [{"role": "user", "content": "You are a geographer."}],
            "append": [{"role": "user", "content": "Answer in English."}],
        },
    }
    gw, up = gateway({"cacheKeyStrategy": "lastQuestion"}, plugins=[decorator])
    france = await post(gw, path, question("What is the capital of France?"))
    poem = await post(gw, path, question("Write a poem about cats."))
    again = await post(gw, path, question("What is the capital of France?"))
    assert [r.headers["x-tollway-cache"] for r in (france, poem, again)] == ["miss", "miss", "hit"]
    assert up.calls == 2


async def test_a_stored_response_is_its_makers_and_store_keeps_requests_apart() -> None:
    """A judge's finding: ``store`` was left out of the key, so a request asking the
    provider to keep its response got the id of one it never kept (and its follow-up
    ``previous_response_id`` a 400); and a stored response's id, replayed to another
    consumer of the route, is one it could neither read nor continue (its maker's)."""
    key_auth = {
        "name": "key-auth",
        "defaultConfig": {
            "keys": ["authorization"],
            "consumers": [{"name": "alice", "credential": "Bearer ka"}, {"name": "bob", "credential": "Bearer kb"}],
        },
    }
    gw, up = gateway(plugins=[key_auth])
    alice, bob = {"authorization": "Bearer ka"}, {"authorization": "Bearer kb"}
    unstored = {**RESPONSES, "store": False}
    outcomes = [
        (await post(gw, "/v1/responses", unstored, **alice)).headers["x-tollway-cache"],
        (await post(gw, "/v1/responses", RESPONSES, **alice)).headers["x-tollway-cache"],
        (await post(gw, "/v1/responses", RESPONSES, **alice)).headers["x-tollway-cache"],
        (await post(gw, "/v1/responses", RESPONSES, **bob)).headers["x-tollway-cache"],
        (await post(gw, "/v1/responses", unstored, **bob)).headers["x-tollway-cache"],
    ]
    assert outcomes == ["miss", "miss", "hit", "miss", "hit"]
    assert up.calls == 3
    # Within one consumer's entries too: stored and not stored are two requests.
    gw, up = gateway({"scope": "consumer"}, plugins=[key_auth])
    first = await post(gw, "/v1/responses", unstored, **alice)
    second = await post(gw, "/v1/responses", RESPONSES, **alice)
    assert (first.headers["x-tollway-cache"], second.headers["x-tollway-cache"]) == ("miss", "miss")
