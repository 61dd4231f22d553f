"""The request's facts (gateway/facts.py): the API, the client's dialect, the model and
the stream flag are established once, by the gateway, before the plugins that need them
run; the body is parsed once; a body unfit for its API is refused only after the
plugins had their say."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tollway.errors import BadRequest
from tollway.gateway import facts
from tollway.protocols.apis import recorded_api
from tollway.testing.gateway import GatewayUnderTest
from tollway.testing.harness import make_exchange


@pytest.mark.parametrize(
    ("path", "api_path", "api", "dialect"),
    [
        ("/v1/chat/completions", "/chat/completions", "chat", "openai"),
        ("/v1/completions", "/completions", "completions", "openai"),
        ("/v1/embeddings", "/embeddings", "embeddings", "openai"),
        ("/v1/messages", "/messages", "messages", "anthropic"),
        ("/v1/models", "/models", "models", "openai"),
        ("/team-a/v1/chat/completions", "/chat/completions", "chat", "openai"),
        ("/v1/responses", "/responses", "responses", "openai"),
        ("/v1/messages/count_tokens", "/messages/count_tokens", "count_tokens", "anthropic"),
        ("/v1/images/generations", "/images/generations", "images", "openai"),
        ("/?text=hi", "/?text=hi", "other", "openai"),
    ],
)
def test_the_path_names_the_api_and_the_dialect(path: str, api_path: str, api: str, dialect: str) -> None:
    ex = make_exchange("POST", path)
    assert (ex.api_path, ex.api, ex.dialect) == (api_path, api, dialect)


def test_the_body_names_the_model_and_the_stream_flag_of_any_api() -> None:
    ex = make_exchange("POST", "/v1/responses", body=b'{"model": "gpt-4o", "stream": true, "input": "hi"}')
    assert (ex.model_requested, ex.stream) == ("gpt-4o", True)
    chat = make_exchange("POST", "/v1/chat/completions", body=b'{"model": "m", "messages": []}')
    assert (chat.model_requested, chat.stream) == ("m", False)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "request body is empty"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"messages": []}', "you must provide a model parameter"),
        (b'{"model": "", "messages": []}', "you must provide a model parameter"),
    ],
)
def test_a_body_unfit_for_a_model_api_is_named_not_raised(body: bytes, message: str) -> None:
    ex = make_exchange("POST", "/v1/chat/completions")
    ex.request.body = body
    unfit = facts.from_body(ex)
    assert isinstance(unfit, BadRequest) and message in unfit.message
    assert unfit.reason == "gateway.bad_request"


def test_other_apis_may_carry_any_body() -> None:
    ex = make_exchange("POST", "/v1/audio/transcriptions")
    ex.request.body = b"--boundary\r\nContent-Disposition: form-data"
    assert facts.from_body(ex) is None
    assert ex.model_requested is None


def test_the_body_is_parsed_once_and_a_bad_body_fails_the_same_way_every_time() -> None:
    ex = make_exchange("POST", "/v1/chat/completions", body=b'{"model": "m"}')
    assert ex.request.json() is ex.request.json()
    bad = make_exchange("POST", "/v1/chat/completions", body=b"{oops")
    with pytest.raises(BadRequest) as first:
        bad.request.json()
    with pytest.raises(BadRequest) as second:
        bad.request.json()
    assert first.value is second.value


AUTH = """
providers: [{id: mock, type: mock}]
routes: [{name: v1, path_prefix: /v1/, provider: mock}]
plugins:
  - name: request-block
    defaultConfig: {block_bodies: [forbidden]}
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      consumers: [{name: alice, credential: k-alice, allow_models: ["gpt-4o-mini"]}]
"""


async def _post(gw: GatewayUnderTest, path: str, content: bytes) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://gw") as client:
        return await client.post(path, content=content, headers={"authorization": "Bearer k-alice"})


async def test_allow_models_holds_on_every_api_that_names_a_model_and_the_record_keeps_it() -> None:
    gw = GatewayUnderTest(AUTH)
    r = await _post(gw, "/v1/responses", b'{"model": "gpt-4o", "input": "hi"}')
    assert r.status_code == 403
    assert r.headers["x-tollway-reason"] == "key-auth.model_not_allowed"
    assert gw.calls[-1].model_requested == "gpt-4o"


async def test_plugins_refuse_an_unfit_body_for_their_own_reasons_before_the_400() -> None:
    gw = GatewayUnderTest(AUTH)
    blocked = await _post(gw, "/v1/chat/completions", b"forbidden and not JSON")
    assert blocked.status_code == 403
    assert blocked.headers["x-tollway-reason"] == "request-block.blocked"
    unfit = await _post(gw, "/v1/chat/completions", b"not JSON")
    assert unfit.status_code == 400
    assert unfit.headers["x-tollway-reason"] == "gateway.bad_request"
    assert "not valid JSON" in unfit.json()["error"]["message"]


@pytest.mark.parametrize(
    "model", ["gpt-4o\u0000", "gpt\n4o", "gpt-4o\u007f", "\u001b[31mred", "gpt\u0085", "\u009b31mred"]
)
async def test_a_model_with_control_characters_is_refused_at_once_and_recorded(model: str) -> None:
    gw = GatewayUnderTest(AUTH)
    r = await _post(gw, "/v1/chat/completions", orjson.dumps({"model": model, "messages": []}))
    assert r.status_code == 400
    assert r.headers["x-tollway-reason"] == "gateway.bad_request"
    assert "control characters" in r.json()["error"]["message"]
    assert gw.calls[-1].status == 400


@pytest.mark.parametrize("model", [".", ".."])
async def test_a_model_that_is_a_dot_segment_is_refused(model: str) -> None:
    """Azure puts the model in its URL's path: ``deployments/../chat/completions``."""
    gw = GatewayUnderTest(AUTH)
    r = await _post(gw, "/v1/chat/completions", orjson.dumps({"model": model, "messages": []}))
    assert (r.status_code, r.headers["x-tollway-reason"]) == (400, "gateway.bad_request")
    assert "no model name" in r.json()["error"]["message"]


def _nested(depth: int) -> bytes:
    """A chat body whose ``metadata`` nests until the whole body is ``depth`` levels deep."""
    inner = "0"
    for level in range(depth - 1):
        inner = f'{{"k":{inner}}}' if level % 2 else f"[{inner}]"
    return f'{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"hi"}}],"metadata":{inner}}}'.encode()


async def test_a_body_nested_deeper_than_64_levels_is_refused_at_once() -> None:
    gw = GatewayUnderTest(AUTH)
    r = await _post(gw, "/v1/chat/completions", _nested(64))
    assert r.status_code == 200, r.text
    r = await _post(gw, "/v1/chat/completions", _nested(65))
    assert (r.status_code, r.headers["x-tollway-reason"]) == (400, "gateway.bad_request")
    assert "deeper than 64" in r.json()["error"]["message"]
    assert gw.calls[-1].provider is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "gpt-4o-mini", "model": "gpt-4o", "messages": []}',
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi", "content": "forbidden"}]}',
        b'{"model": "gpt-4o-mini", "messages": [], "tools": [{"type": "function", "type": "x"}]}',
        b'{"model": "gpt-4o-mini", "messages": [], "metadata": {"a": {"b": [[{"c": 1, "c": 2}]]}}}',
    ],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses", "/v1/files"])
async def test_a_body_with_a_duplicate_key_is_refused_at_once_on_any_api(path: str, body: bytes) -> None:
    gw = GatewayUnderTest(AUTH)
    r = await _post(gw, path, body)
    assert (r.status_code, r.headers["x-tollway-reason"]) == (400, "gateway.bad_request")
    assert "twice" in r.json()["error"]["message"]
    assert gw.calls[-1].provider is None


@pytest.mark.parametrize(
    ("path", "recorded"),
    [
        ("/v1/responses/resp_1", "responses"),
        ("/v1/Responses/resp_1/input_items", "responses"),
        ("/v1/responses/compact", "responses"),
        ("/v1/responses/input_tokens", "count_tokens"),
        ("/v1/responses/input_tokens/", "count_tokens"),
        ("/v1/responsesx", "other"),
        ("/v1/conversations/conv_1", "other"),
        ("/v1beta/models/gemini-2.5-flash:generateContent", "chat"),
    ],
)
def test_the_record_names_the_api_a_call_was_of(path: str, recorded: str) -> None:
    """The Responses API's calls past ``POST /responses`` are served as ``other`` but
    recorded as the Responses API's (a background run's tokens come with its first
    read; compaction is billed as a call), its token count as ``count_tokens``."""
    ex = make_exchange("POST", path)
    assert recorded_api(ex.api, ex.api_path) == recorded
