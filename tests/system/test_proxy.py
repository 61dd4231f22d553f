"""The gateway as an OpenAI-compatible endpoint (SPEC §3 ai-proxy, §4): the official SDK
works unchanged; the provider sees the provider's token and never the client's key;
models are mapped; tokens rotate; the usage chunk is asked for and hidden.

One gateway process serves the module; every test reads what the mock upstream received.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import Proc, start_process
from tests.support.fake_provider import new_request_id, usage_record

CLIENT_KEY = "ck-client-secret-7f3a9"
CONFIG = """
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - id: main
    type: openai
    baseUrl: {mock}/v1
    apiTokens: [sk-provider-1]
    modelMapping: {{house-model: mock-gpt}}
  - id: mapped
    type: openai
    baseUrl: {mock}/v1
    apiTokens: [sk-provider-1]
    modelMapping:
      gpt-3.5-turbo-16k: exact-16k
      "gpt-3*": short-prefix
      "gpt-3.5*": long-prefix
      "~claude-([a-z]+)-(\\\\d)": "anthropic-$1-v$2"
      "~claude-(.*)": "anthropic-any-$1"
      "keep-*": ""
      "*": fallback
  - id: rotating
    type: openai
    baseUrl: {mock}/v1
    apiTokens: [sk-a, sk-b, sk-c]
  - id: resting
    type: openai
    baseUrl: {mock}/v1
    apiTokens: [sk-r1, sk-r2, sk-r3]
  - {{id: alt, type: openai, baseUrl: "{mock}/v1", apiTokens: [sk-alt]}}
  - {{id: chatty, type: openai, baseUrl: "{chatty}/v1", apiTokens: [sk-chatty]}}
  - {{id: custom, type: openai, openaiCustomUrl: "{mock}/v1/chat/completions", apiTokens: [sk-provider-1]}}
routes:
  - {{name: main, path_prefix: /v1/, provider: main}}
  - {{name: mapped, path_prefix: /mapped/v1/, provider: mapped}}
  - {{name: rotating, path_prefix: /rotating/v1/, provider: rotating}}
  - {{name: resting, path_prefix: /resting/v1/, provider: resting}}
  - {{name: by-model, path_prefix: /by-model/v1/, provider: main, model_providers: {{"special-*": alt}}}}
  - {{name: chatty, path_prefix: /chatty/v1/, provider: chatty}}
  - {{name: custom, path_prefix: /custom/v1/, provider: custom}}
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization, x-api-key, apikey]
      consumers:
        - {{name: app, credential: {key}}}
        - {{name: limited, credential: ck-limited, allow_models: ["mock-gpt*"]}}
        - {{name: bob, credential: ck-bob}}
"""
AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}
Requests = Callable[[], list[dict[str, Any]]]


class ChattyProvider(BaseHTTPRequestHandler):
    """A provider that sends headers of its own, as OpenAI does (x-request-id among them)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        body = json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "choices": [],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1},
            }
        ).encode()
        self.send_response(200)
        for name, value in (
            ("content-type", "application/json"),
            ("x-request-id", "req_from_provider"),
            ("openai-processing-ms", "12"),
            ("content-length", str(len(body))),
        ):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def chatty() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ChattyProvider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def gw(mock_llm: Proc, chatty: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    folder: Path = tmp_path_factory.mktemp("core-proxy")
    (folder / "tollway.yaml").write_text(CONFIG.format(mock=mock_llm.url, chatty=chatty, key=CLIENT_KEY))
    proc = start_process(["serve", "-c", "tollway.yaml", "--port", "0", "--admin-port", "0"], cwd=folder)
    yield proc
    assert proc.stop() == 0


@pytest.fixture
def sdk(gw: Proc) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def http(gw: Proc) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, timeout=10) as client:
        yield client


def header(request: dict[str, Any], name: str) -> list[str]:
    return [v for k, v in request["headers"] if k == name]


def assert_provider_auth_only(requests: list[dict[str, Any]], *, on_behalf: bool = True) -> None:
    """Each upstream request carries the provider's token and no trace of the client's key
    (and, when made on the client's behalf, the consumer's name)."""
    assert requests, "the provider saw nothing"
    for req in requests:
        assert header(req, "authorization") == ["Bearer sk-provider-1"], req["headers"]
        if on_behalf:
            assert header(req, "x-mse-consumer") == ["app"]
        for name, value in req["headers"]:
            assert CLIENT_KEY not in value, f"client key leaked in header {name}"
        assert CLIENT_KEY not in req["body"], "client key leaked in the body"
        assert CLIENT_KEY not in req["query_string"], "client key leaked in the query"
        assert CLIENT_KEY not in req["path"]


def chat_body(text: str = "Hello gateway", **extra: Any) -> dict[str, Any]:
    return {"model": "mock-gpt", "messages": [{"role": "user", "content": text}], **extra}


# --- the official SDK ------------------------------------------------------------------------


def test_sdk_chat(sdk: openai.OpenAI, mock_requests: Requests) -> None:
    result = sdk.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "Hello gateway"}])
    assert result.choices[0].message.content == "This is a mock reply to: Hello gateway"
    assert result.model == "mock-gpt"
    assert result.usage is not None and result.usage.completion_tokens > 0
    seen = mock_requests()
    assert [(r["method"], r["path"]) for r in seen] == [("POST", "/v1/chat/completions")]
    assert json.loads(seen[0]["body"])["messages"] == [{"role": "user", "content": "Hello gateway"}]
    assert_provider_auth_only(seen)


def test_sdk_streaming_chat(sdk: openai.OpenAI, mock_requests: Requests) -> None:
    stream = sdk.chat.completions.create(
        model="mock-gpt", messages=[{"role": "user", "content": "Stream to me"}], stream=True
    )
    with stream:
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "This is a mock reply to: Stream to me"
    assert chunks[-1].choices and chunks[-1].choices[0].finish_reason == "stop"
    # The client did not ask for usage: it sees no usage-only chunk.
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    assert_provider_auth_only(mock_requests())


def test_sdk_streaming_chat_with_usage_when_asked(sdk: openai.OpenAI, mock_requests: Requests) -> None:
    stream = sdk.chat.completions.create(
        model="mock-gpt",
        messages=[{"role": "user", "content": "Count my tokens"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    with stream:
        chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    body = json.loads(mock_requests()[0]["body"])
    assert body["stream_options"] == {"include_usage": True}


def test_sdk_embeddings(sdk: openai.OpenAI, mock_requests: Requests) -> None:
    result = sdk.embeddings.create(model="mock-embed", input=["first text", "second text"])
    assert [d.index for d in result.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in result.data)
    assert result.data[0].embedding != result.data[1].embedding
    seen = mock_requests()
    assert [r["path"] for r in seen] == ["/v1/embeddings"]
    assert_provider_auth_only(seen)


def test_sdk_model_listing(sdk: openai.OpenAI, mock_requests: Requests) -> None:
    ids = [m.id for m in sdk.models.list()]
    # The provider's own list, plus the non-wildcard mapping keys.
    assert {"mock-gpt", "mock-gpt-mini", "mock-claude", "mock-embed", "house-model"} <= set(ids)
    assert len(ids) == len(set(ids))
    seen = mock_requests()
    assert [(r["method"], r["path"]) for r in seen] == [("GET", "/v1/models")]
    assert_provider_auth_only(seen, on_behalf=False)


def test_model_listing_is_filtered_by_allow_models(gw: Proc) -> None:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="ck-limited", max_retries=0, timeout=10) as client:
        ids = [m.id for m in client.models.list()]
    assert sorted(ids) == ["mock-gpt", "mock-gpt-mini"]


def test_anthropic_sdk_with_a_consumer_key(gw: Proc, mock_requests: Requests) -> None:
    with anthropic.Anthropic(base_url=gw.url, api_key=CLIENT_KEY, max_retries=0, timeout=10) as client:
        message = client.messages.create(
            model="mock-claude", max_tokens=50, messages=[{"role": "user", "content": "Hello from Claude"}]
        )
    assert message.content[0].type == "text"
    assert "Hello from Claude" in message.content[0].text
    seen = mock_requests()
    # An OpenAI-style provider gets the call translated to chat completions.
    assert [r["path"] for r in seen] == ["/v1/chat/completions"]
    assert header(seen[0], "x-api-key") == []
    assert header(seen[0], "anthropic-version") == [], "Anthropic's headers mean nothing to an OpenAI provider"
    assert_provider_auth_only(seen)


def test_anthropic_clients_get_anthropic_shaped_errors(gw: Proc) -> None:
    with anthropic.Anthropic(base_url=gw.url, api_key="ck-wrong", max_retries=0, timeout=10) as client:
        with pytest.raises(anthropic.AuthenticationError) as raised:
            client.messages.create(model="mock-claude", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    body = raised.value.response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "authentication_error" and "Invalid API key" in body["error"]["message"]
    # The SDK's id of the call is the gateway's, which the usage record keeps.
    assert raised.value.request_id == raised.value.response.headers["x-request-id"]


def test_sdk_error_from_the_gateway_shows_its_message(gw: Proc) -> None:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="ck-wrong", max_retries=0, timeout=10) as client:
        with pytest.raises(openai.AuthenticationError) as raised:
            client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == 401
    assert "Invalid API key" in raised.value.message
    assert raised.value.response.headers["x-tollway-reason"] == "key-auth.unknown_key"


def test_a_call_refused_before_its_body_is_read_is_recorded_with_its_model(gw: Proc) -> None:
    """key-auth refuses in the header phase; the record still names the model asked for
    (SPEC §9), by a JSON body, a form, and an Anthropic client alike."""
    ids = [new_request_id() for _ in range(4)]
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="ck-wrong", max_retries=0, timeout=10) as client:
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(
                model="mock-gpt", messages=[{"role": "user", "content": "x"}], extra_headers={"x-request-id": ids[0]}
            )
        with pytest.raises(openai.AuthenticationError):
            client.audio.transcriptions.create(
                model="whisper-1", file=("a.wav", b"RIFF"), extra_headers={"x-request-id": ids[1]}
            )
    with anthropic.Anthropic(base_url=gw.url, api_key="ck-wrong", max_retries=0, timeout=10) as claude:
        with pytest.raises(anthropic.AuthenticationError):
            claude.messages.create(
                model="mock-claude", max_tokens=5, messages=[{"role": "user", "content": "x"}],
                extra_headers={"x-request-id": ids[2]},
            )  # fmt: skip
    # A body past the bound is not waited for: refused, recorded without its model.
    big = {"model": "mock-gpt", "messages": [{"role": "user", "content": "x" * 70_000}]}
    r = httpx.post(gw.url + "/v1/chat/completions", json=big, headers={"x-request-id": ids[3]}, timeout=10)
    assert r.status_code == 401
    records = [usage_record(gw, rid) for rid in ids]
    assert [(rec["status"], rec["reason"]) for rec in records] == [(401, "key-auth.unknown_key")] * 2 + [
        (401, "key-auth.unknown_key"),
        (401, "key-auth.no_key"),
    ]
    assert [rec["model_requested"] for rec in records] == ["mock-gpt", "whisper-1", "mock-claude", None]
    assert [rec["api"] for rec in records] == ["chat", "audio", "messages", "chat"]


# --- credentials and headers on the way to the provider ---------------------------------------


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"x-api-key": CLIENT_KEY}, {}),
        ({}, {"apikey": CLIENT_KEY, "trace": "t1"}),
        ({"authorization": f"Bearer {CLIENT_KEY}", "x-api-key": CLIENT_KEY}, {"apikey": CLIENT_KEY}),
    ],
    ids=["x-api-key", "query", "everywhere-at-once"],
)
def test_the_client_key_never_reaches_the_provider(
    http: httpx.Client, mock_requests: Requests, headers: dict[str, str], params: dict[str, str]
) -> None:
    r = http.post("/v1/chat/completions", json=chat_body(), headers=headers, params=params)
    assert r.status_code == 200, r.text
    seen = mock_requests()
    assert_provider_auth_only(seen)
    if "trace" in params:
        assert seen[0]["query_string"] == "trace=t1"


def test_the_parameters_that_stay_reach_the_provider_as_the_client_wrote_them(
    http: httpx.Client, mock_requests: Requests
) -> None:
    """Only the credential is taken out: ``%ff`` (no UTF-8) is not made ``%EF%BF%BD``,
    nor ``+`` or an empty pair rewritten."""
    r = http.post(f"/v1/chat/completions?a=%ff&apikey={CLIENT_KEY}&b=x+y&&c=%2F", json=chat_body())
    assert r.status_code == 200, r.text
    assert mock_requests()[0]["query_string"] == "a=%ff&b=x+y&&c=%2F"


def test_an_unrouted_request_runs_no_plugin(http: httpx.Client) -> None:
    # key-auth applies everywhere, yet a request no route matches is a 404, not a 401.
    r = http.post("/nowhere/chat/completions", json=chat_body())
    assert r.status_code == 404
    assert r.headers["x-tollway-reason"] == "gateway.no_route"


def test_other_v1_apis_pass_through_with_body_and_query(http: httpx.Client, mock_requests: Requests) -> None:
    payload = b"\x00\x01 not json, not even text \xff"
    r = http.post(
        "/v1/files",
        params={"purpose": "batch"},
        content=payload,
        headers={**AUTH, "content-type": "application/octet-stream"},
    )
    assert r.status_code == 404  # the provider's own answer, passed through
    assert r.json()["error"]["code"] == "unknown_url"
    seen = mock_requests()
    assert [(s["method"], s["path"], s["query_string"]) for s in seen] == [("POST", "/v1/files", "purpose=batch")]
    assert seen[0]["body"] == payload.decode("utf-8", "replace")
    assert header(seen[0], "content-type") == ["application/octet-stream"]
    assert_provider_auth_only(seen)


def test_a_custom_url_ending_in_an_api_path_is_used_as_it_stands(http: httpx.Client, mock_requests: Requests) -> None:
    assert http.post("/custom/v1/chat/completions", json=chat_body(), headers=AUTH).status_code == 200
    embedding = {"model": "mock-embed", "input": "x"}
    assert http.post("/custom/v1/embeddings", json=embedding, headers=AUTH).status_code == 200
    assert [r["path"] for r in mock_requests()] == ["/v1/chat/completions", "/v1/embeddings"]


def test_a_client_cannot_claim_a_consumer(http: httpx.Client, mock_requests: Requests) -> None:
    r = http.post("/v1/chat/completions", json=chat_body(), headers={**AUTH, "X-Mse-Consumer": "admin"})
    assert r.status_code == 200
    assert header(mock_requests()[0], "x-mse-consumer") == ["app"]


def test_other_headers_pass_through_and_hop_by_hop_ones_do_not(http: httpx.Client, mock_requests: Requests) -> None:
    r = http.post(
        "/v1/chat/completions",
        json=chat_body(),
        headers={
            **AUTH,
            "x-custom-trace": "trace-123",
            "openai-organization": "org-1",
            "keep-alive": "timeout=5",
            "proxy-authorization": "Basic c2VjcmV0",
            "accept-encoding": "gzip, br",
        },
    )
    assert r.status_code == 200
    seen = mock_requests()[0]
    assert header(seen, "x-custom-trace") == ["trace-123"]
    # OpenAI-Organization would choose the provider account: withheld (no pass_headers here).
    for dropped in ("keep-alive", "proxy-authorization", "openai-organization"):
        assert header(seen, dropped) == [], dropped
    assert header(seen, "accept-encoding") == ["identity"]  # the gateway's own, never the client's
    assert header(seen, "host") != [r.request.headers["host"]]


def test_headers_named_in_connection_are_hop_by_hop(http: httpx.Client, mock_requests: Requests) -> None:
    r = http.post(
        "/v1/chat/completions",
        json=chat_body(),
        headers={**AUTH, "connection": "keep-alive, x-hop-secret", "x-hop-secret": "for-the-gateway-only"},
    )
    assert r.status_code == 200
    assert header(mock_requests()[0], "x-hop-secret") == []


def test_response_headers_pass_back_and_every_response_has_a_request_id(http: httpx.Client) -> None:
    ok = http.post("/v1/chat/completions", json=chat_body(), headers=AUTH)
    assert ok.headers["content-type"].startswith("application/json")
    refused = http.post("/v1/chat/completions", json=chat_body())
    missing = http.get("/nowhere", headers=AUTH)
    passed_through = http.post("/v1/chat/completions", json=chat_body(), headers={**AUTH, "x-mock-status": "503"})
    ids = [r.headers.get("x-request-id") for r in (ok, refused, missing, passed_through)]
    assert all(ids) and len(set(ids)) == 4
    assert (refused.status_code, missing.status_code, passed_through.status_code) == (401, 404, 503)


def test_a_providers_own_request_id_does_not_shadow_the_gateways(http: httpx.Client) -> None:
    for headers in (AUTH, {**AUTH, "x-request-id": "client-id-7"}):
        r = http.post("/chatty/v1/chat/completions", json=chat_body(), headers=headers)
        assert r.status_code == 200
        assert r.headers["openai-processing-ms"] == "12"  # the provider's other headers pass back
        ids = r.headers.get_list("x-request-id")
        assert len(ids) == 1 and ids[0] != "req_from_provider", ids
        assert ids[0] == headers.get("x-request-id", ids[0])


def test_the_clients_request_id_is_kept(http: httpx.Client, gw: Proc) -> None:
    for headers in (AUTH, {}):
        r = http.post("/v1/chat/completions", json=chat_body(), headers={**headers, "x-request-id": "client-id-42"})
        assert r.headers["x-request-id"] == "client-id-42"
        assert r.headers.get_list("x-request-id") == ["client-id-42"]
    gw.wait_for_stdout(lambda lines: sum("client-id-42" in line for line in lines) >= 2)


# --- model mapping (SPEC §3) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "upstream"),
    [
        ("gpt-3.5-turbo-16k", "exact-16k"),  # exact beats every pattern
        ("gpt-3.5-turbo", "long-prefix"),  # the longest prefix wins
        ("gpt-3-davinci", "short-prefix"),
        ("claude-haiku-3", "anthropic-haiku-v3"),  # regexes in order, with $1 $2
        ("claude-3-opus", "anthropic-any-3-opus"),
        ("keep-this-name", "keep-this-name"),  # "" keeps the requested name
        ("llama-3", "fallback"),  # *
    ],
)
def test_model_mapping_is_what_the_provider_sees(
    http: httpx.Client, mock_requests: Requests, requested: str, upstream: str
) -> None:
    r = http.post("/mapped/v1/chat/completions", json={**chat_body(), "model": requested}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert json.loads(mock_requests()[0]["body"])["model"] == upstream


def test_model_mapping_applies_to_streams_and_embeddings(http: httpx.Client, mock_requests: Requests) -> None:
    r = http.post(
        "/mapped/v1/chat/completions", json={**chat_body(), "model": "gpt-3.5-x", "stream": True}, headers=AUTH
    )
    assert r.status_code == 200
    r = http.post("/mapped/v1/embeddings", json={"model": "claude-x", "input": "hi"}, headers=AUTH)
    assert r.status_code == 200
    assert [json.loads(req["body"])["model"] for req in mock_requests()] == ["long-prefix", "anthropic-any-x"]


def test_an_unmapped_body_is_forwarded_byte_for_byte(http: httpx.Client, mock_requests: Requests) -> None:
    raw = b'{"model":"mock-gpt",  "messages":[{"role":"user","content":"caf\\u00e9"}], "x_extra": [1, 2.50]}'
    r = http.post("/v1/chat/completions", content=raw, headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 200
    assert mock_requests()[0]["body"].encode() == raw


def test_model_providers_pick_the_provider_by_model(http: httpx.Client, mock_requests: Requests) -> None:
    for model in ("special-1", "mock-gpt"):
        r = http.post("/by-model/v1/chat/completions", json={**chat_body(), "model": model}, headers=AUTH)
        assert r.status_code == 200
    assert [header(r, "authorization") for r in mock_requests()] == [["Bearer sk-alt"], ["Bearer sk-provider-1"]]


# --- several apiTokens ----------------------------------------------------------------------------


def test_api_tokens_are_used_in_turn(http: httpx.Client, mock_requests: Requests) -> None:
    for _ in range(6):
        assert http.post("/rotating/v1/chat/completions", json=chat_body(), headers=AUTH).status_code == 200
    used = [header(r, "authorization")[0] for r in mock_requests()]
    assert used == ["Bearer sk-a", "Bearer sk-b", "Bearer sk-c"] * 2


def test_calls_on_what_a_provider_keeps_per_account_go_with_one_key_per_consumer(
    http: httpx.Client, mock_requests: Requests
) -> None:
    """Files, batches, stored responses, vector stores, a chat completion it stores: a
    provider keeps them in the account (or project) of the key they were made with, and
    another key's answer is 404. A consumer's calls on them all go with one key, the same
    in every process (a judge saw a file made with one key read with the next, 404 twice
    in three); its other calls, and another consumer's, still go in turn."""
    stateful = [
        ("POST", "/responses", {"model": "mock-gpt", "input": "hi"}),
        ("GET", "/responses/resp_123", None),
        ("GET", "/files", None),
        ("GET", "/batches", None),
        ("GET", "/vector_stores/vs_1", None),
        ("POST", "/chat/completions", {**chat_body(), "store": True}),
    ]
    used: dict[str, set[str]] = {}
    for consumer, key in (("app", CLIENT_KEY), ("bob", "ck-bob")):
        auth = {"authorization": f"Bearer {key}"}
        before = len(mock_requests())
        for method, path, body in stateful * 2:
            http.request(method, "/rotating/v1" + path, json=body, headers=auth)
            # Interleaved with calls whose keys go in turn, which must not move it.
            assert http.post("/rotating/v1/chat/completions", json=chat_body(), headers=auth).status_code == 200
        seen = [(r["method"], r["path"], header(r, "authorization")[0]) for r in mock_requests()[before:]]
        assert [(m, p.removeprefix("/v1")) for m, p, _ in seen[::2]] == [(m, p) for m, p, _ in stateful * 2]
        assert {k for _, _, k in seen[1::2]} == {"Bearer sk-a", "Bearer sk-b", "Bearer sk-c"}, seen
        used[consumer] = {k for _, _, k in seen[::2]}
    # One key for each consumer, not the first key for all (crc32 of the name picks it).
    assert used == {"app": {"Bearer sk-a"}, "bob": {"Bearer sk-c"}}, used


def test_a_token_answering_429_rests(http: httpx.Client, mock_requests: Requests) -> None:
    limited = http.post("/resting/v1/chat/completions", json=chat_body(), headers={**AUTH, "x-mock-status": "429"})
    assert limited.status_code == 429
    for _ in range(4):
        assert http.post("/resting/v1/chat/completions", json=chat_body(), headers=AUTH).status_code == 200
    used = [header(r, "authorization")[0].removeprefix("Bearer ") for r in mock_requests()]
    assert used[0] == "sk-r1"
    assert "sk-r1" not in used[1:], used
    assert set(used[1:]) == {"sk-r2", "sk-r3"}


# --- stream_options.include_usage ---------------------------------------------------------------


def sse_data(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


def test_the_gateway_asks_for_usage_and_hides_it_from_a_client_that_did_not(
    http: httpx.Client, mock_requests: Requests, gw: Proc
) -> None:
    r = http.post("/v1/chat/completions", json=chat_body(stream=True), headers={**AUTH, "x-request-id": "usage-1"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    data = sse_data(r.text)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["choices"] for c in chunks), "the usage-only chunk reached a client that did not ask"
    assert not any(c.get("usage") for c in chunks)
    assert json.loads(mock_requests()[0]["body"])["stream_options"] == {"include_usage": True}
    # The hidden chunk still counts: the record has the provider's numbers.
    record = _record(http, gw, "usage-1")
    assert record["output_tokens"] > 0 and record["input_tokens"] > 0
    assert record["tokens_estimated"] is False


def test_a_client_that_asked_for_usage_gets_the_chunk(http: httpx.Client, mock_requests: Requests) -> None:
    body = chat_body(stream=True, stream_options={"include_usage": True})
    r = http.post("/v1/chat/completions", json=body, headers=AUTH)
    chunks = [json.loads(d) for d in sse_data(r.text)[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert json.loads(mock_requests()[0]["body"])["stream_options"] == {"include_usage": True}


def test_a_client_that_set_include_usage_false_does_not_get_the_chunk(
    http: httpx.Client, mock_requests: Requests
) -> None:
    body = chat_body(stream=True, stream_options={"include_usage": False})
    r = http.post("/v1/chat/completions", json=body, headers=AUTH)
    chunks = [json.loads(d) for d in sse_data(r.text)[:-1]]
    assert all(c["choices"] for c in chunks)
    assert json.loads(mock_requests()[0]["body"])["stream_options"]["include_usage"] is True


def test_legacy_completions_streams_get_the_same_treatment(http: httpx.Client, mock_requests: Requests) -> None:
    r = http.post("/v1/completions", json={"model": "mock-gpt", "prompt": "Say hi", "stream": True}, headers=AUTH)
    assert r.status_code == 200
    chunks = [json.loads(d) for d in sse_data(r.text)[:-1]]
    assert chunks and all(c["choices"] for c in chunks)
    assert json.loads(mock_requests()[0]["body"])["stream_options"] == {"include_usage": True}


def _record(http: httpx.Client, gw: Proc, request_id: str) -> dict[str, Any]:
    gw.wait_for_stdout(lambda lines: any(request_id in line for line in lines))
    r = httpx.get(gw.admin_url + "/api/requests", params={"limit": 50}, timeout=5)
    assert r.status_code == 200
    found: list[dict[str, Any]] = [rec for rec in r.json()["requests"] if rec["request_id"] == request_id]
    assert len(found) == 1
    return found[0]


def test_an_answers_date_is_when_it_was_made_not_when_its_request_came(gw: Proc) -> None:
    """RFC 9110 §6.6.1: ``Date`` is when the message was made. An answer the provider took
    2.5 s over was dated the request's arrival (a judge's finding: a client estimating
    clock skew from it was misled)."""
    sent = time.time()
    answered = httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "mock-gpt", "messages": [{"role": "user", "content": "late"}]},
        headers={"authorization": f"Bearer {CLIENT_KEY}", "x-mock-latency-ms": "2500"},
        timeout=10,
    )
    assert answered.status_code == 200
    # (The header has whole seconds, renewed once a second: 2.5 s later it says at
    # least the second after the one the request was sent in.)
    assert parsedate_to_datetime(answered.headers["date"]).timestamp() > sent, (answered.headers["date"], sent)
