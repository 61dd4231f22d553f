"""ai-data-masking (plugins/ai_data_masking.py; SPEC §3; Higress reference §13) through the
plugin harness, without sockets: masking each API's request, the deny answers, restoring
placeholders in whole answers and streams, and config errors. Its parts are tested in
tests/unit/masking/; the property that no planted secret reaches the provider in
test_ai_data_masking_property.py."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from tests.support.masking_support import chunk, streamed
from tollway.errors import GatewayError
from tollway.exchange import Exchange, Reply
from tollway.masking.normalise import normalise
from tollway.plugins.ai_data_masking import THREAD_FROM_BYTES
from tollway.protocols.sse import SseEvent
from tollway.testing.harness import AnyPlugin, make_exchange, make_plugin, run_request

CHAT = "/v1/chat/completions"
DEFAULT_RAW = b'{"errmsg":"Sensitive words found in the question or answer have been blocked"}'


def masking(**config: Any) -> AnyPlugin:
    return make_plugin("ai-data-masking", config)


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def request(body: dict[str, Any], path: str = CHAT) -> Exchange:
    return make_exchange("POST", path, {"content-type": "application/json"}, body=orjson.dumps(body))


async def masked(plugin: AnyPlugin, body: dict[str, Any], path: str = CHAT) -> Exchange:
    ex = request(body, path)
    assert await run_request(plugin, ex) is None
    return ex


async def test_prompt_leaves_masked_and_the_client_request_is_untouched() -> None:
    plugin = masking()
    text = "Mail bob@example.com, card 4111 1111 1111 1111, again bob@example.com"
    ex = await masked(plugin, chat(text))
    assert ex.upstream_json is not None
    assert ex.upstream_json["messages"][0]["content"] == "Mail [EMAIL_1], card [CARD_1], again [EMAIL_1]"
    assert ex.upstream_json["model"] == "gpt-4o-mini"
    assert ex.request.json()["messages"][0]["content"] == text
    assert ex.blocked_by is None and ex.reason is None


async def test_nothing_sensitive_leaves_the_body_alone() -> None:
    ex = await masked(masking(), chat("nothing to see here"))
    assert ex.upstream_json is None


async def test_whole_answers_get_their_originals_back() -> None:
    plugin = masking()
    ex = await masked(plugin, chat("Mail bob@example.com"))
    ex.status = 200
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Wrote to [EMAIL_1]."}}]}
    out = orjson.loads(await plugin.response_body(ex, orjson.dumps(answer)))
    assert out["choices"][0]["message"]["content"] == "Wrote to bob@example.com."
    thinking = {"type": "thinking", "thinking": "[EMAIL_1]", "signature": "sig"}
    anthropic = {"type": "message", "content": [thinking, {"type": "text", "text": "[EMAIL_1]"}]}
    content = orjson.loads(await plugin.response_body(ex, orjson.dumps(anthropic)))["content"]
    assert content == [thinking, {"type": "text", "text": "bob@example.com"}]
    ex.status = 500
    assert await plugin.response_body(ex, b'{"error": "[EMAIL_1]"}') == b'{"error": "[EMAIL_1]"}'


async def test_stream_hooks_restore_through_the_plugin() -> None:
    plugin = masking()
    ex = await masked(plugin, chat("Mail bob@example.com", stream=True))
    out = plugin.stream_event(ex, chunk("to [EMAI")) + plugin.stream_event(ex, chunk("L_1]!")) + plugin.stream_end(ex)
    assert streamed(out) == "to bob@example.com!"


async def test_replace_roles_follow_higress() -> None:
    plugin = masking(
        detectors=[],
        replace_roles=[
            {
                "regex": "%{EMAILLOCALPART}@%{HOSTNAME:domain}",
                "type": "replace",
                "restore": True,
                "value": "****@$domain",
            },
            {"regex": r"sk-[0-9a-zA-Z]*", "type": "hash", "restore": True},
            {"regex": r"%{IP}", "type": "replace", "value": "***.***.***.***"},
        ],
    )
    ex = await masked(plugin, chat('curl http://172.20.5.14/x -H "Authorization: sk-12345" -H "Auth: test@gmail.com"'))
    assert ex.upstream_json is not None
    assert ex.upstream_json["messages"][0]["content"] == (
        'curl http://***.***.***.***/x -H "Authorization: 48a7e98a91d93896d8dac522c5853948" -H "Auth: ****@gmail.com"'
    )
    ex.status = 200
    answer = {"choices": [{"message": {"content": "48a7e98a91d93896d8dac522c5853948 ****@gmail.com ***.***.***.***"}}]}
    out = orjson.loads(await plugin.response_body(ex, orjson.dumps(answer)))
    assert out["choices"][0]["message"]["content"] == "sk-12345 test@gmail.com ***.***.***.***"


async def test_detectors_can_be_chosen() -> None:
    ex = await masked(masking(detectors=["card"]), chat("bob@example.com 4111111111111111"))
    assert ex.upstream_json is not None
    assert ex.upstream_json["messages"][0]["content"] == "bob@example.com [CARD_1]"
    assert (await masked(masking(detectors=[]), chat("bob@example.com"))).upstream_json is None


async def test_jsonpath_and_raw_add_fields() -> None:
    ex = await masked(
        masking(deny_openai=False, deny_jsonpath=["$.metadata.note"]),
        {**chat("bob@example.com"), "metadata": {"note": "a@b.cd"}},
    )
    assert ex.upstream_json is not None
    assert ex.upstream_json["metadata"]["note"] == "[EMAIL_1]"
    assert ex.upstream_json["messages"][0]["content"] == "bob@example.com"
    ex = await masked(masking(deny_raw=True), {"model": "a@b.cd", "x": {"y": ["a@b.cd"]}}, "/v1/responses")
    assert ex.upstream_json == {"model": "a@b.cd", "x": {"y": ["[EMAIL_1]"]}}


async def test_a_field_selected_twice_is_masked_once() -> None:
    plugin = masking(
        deny_jsonpath=["$.messages[*].content"],
        replace_roles=[{"regex": r"[A-Z]+_\d", "type": "replace", "value": "X"}],
    )
    ex = await masked(plugin, chat("bob@example.com"))
    assert ex.upstream_json is not None
    assert ex.upstream_json["messages"][0]["content"] == "[EMAIL_1]"


def refusal(outcome: object, ex: Exchange) -> Reply:
    assert isinstance(outcome, Reply), outcome
    assert (ex.blocked_by, ex.reason) == ("ai-data-masking", "ai-data-masking.denied")
    return outcome


async def test_deny_words_answer_like_higress() -> None:
    plugin = masking(deny_words=["Project Falcon"], deny_message="Not allowed.")
    ex = request(chat("tell me about project falcon"))
    reply = refusal(await run_request(plugin, ex), ex)
    assert reply.status == 200 and ("content-type", "application/json") in reply.headers
    body = orjson.loads(reply.body)
    assert body["object"] == "chat.completion" and body["model"] == "gpt-4o-mini"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Not allowed."}
    assert ex.upstream_json is None


async def test_deny_in_a_stream_and_in_anthropic_and_raw_shapes() -> None:
    plugin = masking(deny_words=["forbidden"], deny_raw_message='{"errmsg": "no"}')
    ex = request(chat("forbidden", stream=True))
    reply = refusal(await run_request(plugin, ex), ex)
    events = [SseEvent(part + b"\n\n") for part in reply.body.split(b"\n\n") if part]
    assert streamed(events) == "Sensitive words found in the question or answer have been blocked"
    assert events[-1].data == "[DONE]" and ex.stream
    ex = request(
        {"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "forbidden"}]}, "/v1/messages"
    )
    body = orjson.loads(refusal(await run_request(plugin, ex), ex).body)
    assert body["type"] == "message" and body["content"][0]["type"] == "text"
    ex = request({"model": "e", "input": "forbidden"}, "/v1/embeddings")
    assert refusal(await run_request(plugin, ex), ex).body == b'{"errmsg": "no"}'


async def test_deny_code_400_and_up_is_an_error_in_the_clients_protocol() -> None:
    plugin = masking(deny_words=["forbidden"], deny_code=403)
    ex = request(chat("forbidden"))
    err = await run_request(plugin, ex)
    assert isinstance(err, GatewayError)
    assert (err.status, err.reason, err.code) == (403, "ai-data-masking.denied", "request_blocked")
    assert err.message == "Sensitive words found in the question or answer have been blocked"
    assert ex.blocked_by == "ai-data-masking"


async def test_answers_are_checked_for_deny_words_but_not_their_labels() -> None:
    plugin = masking(deny_words=["stop", "forbidden"], deny_code=451)
    ex = await masked(plugin, chat("hello"))
    ex.status = 200
    # "stop" as a finish reason, an id or a model is no word the model wrote.
    fine = {"id": "stop", "model": "stop", "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "all good"}}]}  # fmt: skip
    assert await plugin.response_body(ex, orjson.dumps(fine)) == orjson.dumps(fine)
    said = {**fine, "choices": [{"index": 0, "message": {"role": "assistant", "content": "it is FORBIDDEN"}}]}
    with pytest.raises(GatewayError) as raised:
        await plugin.response_body(ex, orjson.dumps(said))
    assert (raised.value.status, raised.value.code, ex.reason) == (451, "request_blocked", "ai-data-masking.denied")
    # Streams: the word split between two events stops the stream before the second.
    ex = await masked(plugin, chat("hello", stream=True))
    assert streamed(plugin.stream_event(ex, chunk("it is forb"))) == "it is forb"
    with pytest.raises(GatewayError):
        plugin.stream_event(ex, chunk("idden"))
    # skip_response leaves answers alone, deny words and all.
    quiet = masking(deny_words=["forbidden"], skip_response=True)
    ex = await masked(quiet, chat("hello"))
    ex.status = 200
    assert await quiet.response_body(ex, orjson.dumps(said)) == orjson.dumps(said)


async def test_a_deny_word_in_an_answer_gives_the_requests_refusal_in_its_body() -> None:
    plugin = masking(deny_words=["forbidden"], deny_message="Not allowed.")
    ex = await masked(plugin, chat("hello"))
    ex.status = 200
    said = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "forbidden"}}]}
    body = orjson.loads(await plugin.response_body(ex, orjson.dumps(said)))
    assert body["choices"][0]["message"]["content"] == "Not allowed." and ex.blocked_by == "ai-data-masking"
    anthropic = {"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    ex = await masked(plugin, anthropic, "/v1/messages")
    ex.status = 200
    said_anthropic = {"type": "message", "content": [{"type": "text", "text": "Forbidden!"}]}
    body = orjson.loads(await plugin.response_body(ex, orjson.dumps(said_anthropic)))
    assert body["type"] == "message" and body["content"][0]["text"] == "Not allowed."


async def test_mode_deny_refuses_what_a_detector_finds() -> None:
    plugin = masking(mode="deny", replace_roles=[{"regex": "ACME-\\d+", "type": "replace", "value": "ACME"}])
    ex = request(chat("card 4111 1111 1111 1111"))
    refusal(await run_request(plugin, ex), ex)
    ex = await masked(plugin, chat("ticket ACME-42"))
    assert ex.upstream_json is not None and ex.upstream_json["messages"][0]["content"] == "ticket ACME"


async def test_system_deny_refuses_private_keys() -> None:
    plugin = masking(system_deny=True)
    ex = request(chat("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----"))
    refusal(await run_request(plugin, ex), ex)


async def test_bodies_it_cannot_read_pass_untouched() -> None:
    plugin = masking()
    ex = make_exchange("POST", CHAT, {}, body=b"not json bob@example.com")
    assert await run_request(plugin, ex) is None and ex.upstream_json is None
    ex = make_exchange("GET", "/v1/models")
    assert await run_request(plugin, ex) is None


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"replace_roles": [{"regex": "(", "type": "replace"}]}, "not a valid regular expression"),
        ({"replace_roles": [{"regex": "%{NOPE}", "type": "replace"}]}, "unknown grok pattern"),
        ({"replace_roles": [{"regex": "a*", "type": "replace"}]}, "matches the empty string"),
        ({"replace_roles": [{"regex": "a", "type": "mask"}]}, "type"),
        ({"replace_roles": [{"regex": "(a)", "type": "replace", "value": "$2"}]}, "group"),
        ({"deny_jsonpath": ["messages"]}, "starts with"),
        ({"deny_code": 99}, "deny_code"),
        ({"deny_code": 100}, "deny_code"),
        ({"deny_code": 204}, "not 204, 205 or 304"),
        ({"deny_code": 304}, "not 204, 205 or 304"),
        ({"detectors": ["passport"]}, "detectors"),
        ({"mode": "block"}, "mode"),
        ({"deny_word": ["x"]}, "deny_word"),
    ],
)
def test_invalid_config_is_an_error(config: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        make_plugin("ai-data-masking", config)


# --- every API that carries prompt text; unicode tricks (SPEC §14) ------------------------

EMAIL = "bob@example.com"
TRICKS = {
    "plain": EMAIL,
    "fullwidth": "ｂｏｂ＠ｅｘａｍｐｌｅ．ｃｏｍ",
    "fullwidth-at": "bob＠example.com",
    "zero-width-space": "bob\u200b@exam\u200bple.com",
    "zero-width-joiners": "b\u200co\u200db\u2060@example\ufeff.com",
    "soft-hyphen": "bob@exam\u00adple.com",
    "mixed": "ｂob\u200b＠exa\u00adｍple.com",
}


def prompt_bodies(text: str) -> dict[str, tuple[str, dict[str, Any], Callable[[dict[str, Any]], Any]]]:
    """Per API shape: the path, a body with ``text`` where the model reads it, and where
    that text is in the body the provider gets."""
    tool = {"type": "function", "function": {"name": "f", "description": f"Mails {text}", "parameters": {}}}
    anthropic: dict[str, Any] = {"model": "claude", "max_tokens": 9}
    return {
        "chat": (CHAT, chat(f"Mail {text}"), lambda b: b["messages"][0]["content"]),
        "chat-tool-description": (
            CHAT, {**chat("hi"), "tools": [tool]}, lambda b: b["tools"][0]["function"]["description"]
        ),
        "chat-user": (CHAT, {**chat("hi"), "user": text}, lambda b: b["user"]),
        "completions": ("/v1/completions", {"model": "m", "prompt": [f"Mail {text}"]}, lambda b: b["prompt"][0]),
        "embeddings": ("/v1/embeddings", {"model": "m", "input": text}, lambda b: b["input"]),
        "messages-text": (
            "/v1/messages",
            {**anthropic, "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]},
            lambda b: b["messages"][0]["content"][0]["text"],
        ),
        "messages-document": (
            "/v1/messages",
            {**anthropic, "messages": [{"role": "user", "content": [
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": text}}]}]},
            lambda b: b["messages"][0]["content"][0]["source"]["data"],
        ),
        "messages-tool": (
            "/v1/messages",
            {**anthropic, "messages": [], "tools": [{"name": "t", "description": text}]},
            lambda b: b["tools"][0]["description"],
        ),
        "count_tokens": (
            "/v1/messages/count_tokens",
            {"model": "claude", "system": text, "messages": [{"role": "user", "content": "hi"}]},
            lambda b: b["system"],
        ),
        "responses-input": ("/v1/responses", {"model": "m", "input": text}, lambda b: b["input"]),
        "responses-items": (
            "/v1/responses",
            {"model": "m", "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                {"type": "function_call_output", "call_id": "c", "output": text}]},
            lambda b: b["input"][1]["output"],
        ),
        "responses-instructions": ("/v1/responses", {"model": "m", "input": "hi", "instructions": text},
                                   lambda b: b["instructions"]),
    }  # fmt: skip


@pytest.mark.parametrize("api", list(prompt_bodies("")))
@pytest.mark.parametrize("trick", list(TRICKS))
async def test_every_api_masks_an_address_however_it_is_written(api: str, trick: str) -> None:
    written = TRICKS[trick]
    path, body, where = prompt_bodies(written)[api]
    ex = await masked(masking(), body, path)
    assert ex.upstream_json is not None
    sent = where(ex.upstream_json)
    assert "[EMAIL_1]" in sent and "bob" not in normalise(sent) and "example" not in normalise(sent)
    assert ex.upstream_json["model"] == body["model"]
    assert {k: v for k, v in ex.upstream_json.items() if not isinstance(v, (str, list))} == {
        k: v for k, v in body.items() if not isinstance(v, (str, list))
    }, "parameters leave as they came"
    assert ex.request.json() == body, "the client's request is untouched"


@pytest.mark.parametrize("trick", list(TRICKS))
async def test_the_answer_gets_back_exactly_what_the_client_wrote(trick: str) -> None:
    plugin = masking()
    written = TRICKS[trick]
    ex = await masked(plugin, chat(f"Mail {written}, again {EMAIL}"))
    assert ex.upstream_json is not None
    sent = ex.upstream_json["messages"][0]["content"]
    ex.status = 200
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": f"Echo: {sent}"}}]}
    out = orjson.loads(await plugin.response_body(ex, orjson.dumps(answer)))
    assert out["choices"][0]["message"]["content"] == f"Echo: Mail {written}, again {EMAIL}"


async def test_a_value_hidden_only_in_the_normal_form_masks_its_whole_span() -> None:
    ex = await masked(masking(), chat("card 4111 11\u00ad11 1111 １１１１ and ip 10.0\u200b.0.1 ok"))
    assert ex.upstream_json is not None
    assert ex.upstream_json["messages"][0]["content"] == "card [CARD_1] and ip [IP_1] ok"


async def test_user_rules_match_the_text_as_sent_and_its_normal_form() -> None:
    plugin = masking(
        detectors=[],
        replace_roles=[
            {"regex": "[０-９]{4}", "type": "replace", "value": "WIDE"},  # written for fullwidth digits
            {"regex": r"ACME-\d+", "type": "hash"},
        ],
    )
    ex = await masked(plugin, chat("pin １２３４, ticket ＡＣＭＥ－42 and ACME-42"))
    assert ex.upstream_json is not None
    content = ex.upstream_json["messages"][0]["content"]
    assert content.startswith("pin WIDE, ticket ")
    first, second = content.removeprefix("pin WIDE, ticket ").split(" and ")
    assert first == second == hashlib.md5(b"ACME-42").hexdigest(), "one value, one pseudonym, however written"


@pytest.mark.parametrize(
    "written", ["ｐｒｏｊｅｃｔ ｆａｌｃｏｎ", "pro\u00adject fal\u200bcon", "PROJECT\u3000FALCON"]
)
async def test_deny_words_are_no_easier_to_get_around(written: str) -> None:
    for api, (path, body, _where) in prompt_bodies(f"tell me about {written}").items():
        ex = request(body, path)
        outcome = await run_request(masking(deny_words=["project falcon"]), ex)
        assert ex.reason == "ai-data-masking.denied", (api, outcome)
        assert ex.upstream_json is None
    ex = request(chat("about project falcon"))
    assert isinstance(await run_request(masking(deny_words=["ｐｒｏｊｅｃｔ　ｆａｌｃｏｎ"]), ex), Reply)


async def test_responses_answers_are_restored_whole_and_streamed() -> None:
    plugin = masking()
    ex = await masked(
        plugin, {"model": "m", "input": f"Mail {EMAIL}", "instructions": f"Sign as {EMAIL}"}, "/v1/responses"
    )
    assert ex.upstream_json == {"model": "m", "input": "Mail [EMAIL_1]", "instructions": "Sign as [EMAIL_1]"}
    ex.status = 200
    answer = {
        "object": "response",
        "instructions": "Sign as [EMAIL_1]",
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "Done: [EMAIL_1]"}]}],
    }
    out = orjson.loads(await plugin.response_body(ex, orjson.dumps(answer)))
    assert out["output"][0]["content"][0]["text"] == f"Done: {EMAIL}"
    assert out["instructions"] == f"Sign as {EMAIL}"
    place = {"item_id": "m1", "output_index": 0, "content_index": 0}
    events = [
        SseEvent.of_json({"type": "response.output_text.delta", **place, "delta": d}, "response.output_text.delta")
        for d in ("Done: [EMA", "IL_1]")
    ]
    deltas = [orjson.loads(e.data)["delta"] for ev in events for e in plugin.stream_event(ex, ev)]
    assert "".join(deltas) == f"Done: {EMAIL}"


async def test_responses_refusals_in_their_own_shape() -> None:
    plugin = masking(deny_words=["forbidden"], deny_message="Not allowed.")
    ex = request({"model": "m", "input": "forbidden"}, "/v1/responses")
    body = orjson.loads(refusal(await run_request(plugin, ex), ex).body)
    assert body["object"] == "response" and body["status"] == "completed" and body["model"] == "m"
    assert body["output"][0]["content"][0] == {"type": "output_text", "text": "Not allowed.", "annotations": [],
                                               "logprobs": []}  # fmt: skip
    ex = request({"model": "m", "input": "forbidden", "stream": True}, "/v1/responses")
    reply = refusal(await run_request(plugin, ex), ex)
    events = [SseEvent(part + b"\n\n") for part in reply.body.split(b"\n\n") if part]
    kinds = [e.event for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert [orjson.loads(e.data)["sequence_number"] for e in events] == list(range(len(events)))
    assert "".join(orjson.loads(e.data)["delta"] for e in events if e.event == "response.output_text.delta") == (
        "Not allowed."
    )
    ex = request(
        {"model": "claude", "messages": [{"role": "user", "content": "forbidden"}]}, "/v1/messages/count_tokens"
    )
    assert refusal(await run_request(plugin, ex), ex).body == DEFAULT_RAW


async def test_deny_raw_reads_a_body_of_any_depth() -> None:
    value: Any = "bob@example.com"
    for _ in range(20_000):
        value = [value]
    ex = request({"model": "m", "x": "y"}, "/v1/other")
    ex.request._json = {"model": "m", "x": value}  # as if a parser had let it through
    assert await run_request(masking(deny_raw=True), ex) is None
    assert ex.upstream_json is not None
    leaf = ex.upstream_json["x"]
    while isinstance(leaf, list):
        leaf = leaf[0]
    assert leaf == "[EMAIL_1]"


@pytest.mark.parametrize("deny", [False, True])
async def test_a_large_prompt_is_masked_while_other_calls_go_on(deny: bool) -> None:
    # Megabytes of prompt dense with things to mask take the masker about a second: the
    # event loop (every other call) keeps its turns meanwhile, and the outcome is the
    # same as on the loop (the placeholders, or the refusal for a deny word at the end).
    text = "mail a@b.co now " * (1_500_000 // 16) + ("forbidden" if deny else "")
    assert len(text) > THREAD_FROM_BYTES
    plugin = masking(deny_words=["forbidden"])
    ex = request(chat(text))
    turns = 0
    masking_done = False

    async def other_calls() -> None:
        nonlocal turns
        while not masking_done:
            await asyncio.sleep(0.001)
            turns += 1

    others = asyncio.create_task(other_calls())
    await asyncio.sleep(0.01)
    before = turns
    outcome = await run_request(plugin, ex)
    masking_done = True
    await others
    if deny:  # (found at once: no turns to count)
        assert isinstance(outcome, (Reply, GatewayError))
        assert ex.blocked_by == "ai-data-masking"
    else:
        assert turns - before >= 3, "the event loop had no turn while the prompt was masked"
        assert outcome is None and ex.upstream_json is not None
        content = ex.upstream_json["messages"][0]["content"]
        assert content.startswith("mail [EMAIL_1] now mail [EMAIL_1] now") and "a@b.co" not in content
