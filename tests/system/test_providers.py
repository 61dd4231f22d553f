"""Every provider type (SPEC §2) through a real gateway process, against one recording
fake provider that answers each protocol from tests/fixtures/transcripts: the exact
path, query, auth header and body the gateway sent, what the client got back (the
official OpenAI SDK, and the Anthropic SDK for claude and gemini), plain and streamed,
and the tokens in the usage record.

Each provider has its own base under the fake (``{fake}/deepseek/v1``…), so the path
the fake saw shows which base the gateway used; each is reached on its own route
``/p/<provider id>/v1/``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from tests.conftest import Proc
from tests.support.fake_provider import FakeProvider, Fault, Seen, new_request_id, serve_gateway, usage_record
from tollway.mockllm import replies

CLIENT_KEY = "ck-app-5d1e"
OPENAI_FAMILY = ("deepseek", "qwen", "groq", "mistral", "moonshot", "openrouter", "together", "vllm")


# A user name and password with characters percent-encoded in the URL ("@" and ":").
USER_INFO = "us%40er:p%3Ass-w0rd"
BASIC = "Basic " + base64.b64encode(b"us@er:p:ss-w0rd").decode()


def with_user_info(url: str) -> str:
    return url.replace("://", f"://{USER_INFO}@", 1)


def config(fake: str) -> str:
    """One provider of every type, each on its own route ``/p/<id>/v1/``."""
    azure_url = f"{fake}/openai/deployments/dep-full/chat/completions?api-version=2024-06-01"
    providers = {
        "openai": f'type: openai, baseUrl: "{fake}/openai/v1", apiTokens: [sk-openai]',
        "azure-full": f'type: azure, azureServiceUrl: "{azure_url}", apiTokens: [az-full]',
        "azure-resource": f'type: azure, baseUrl: "{fake}", apiVersion: "2025-01-01-preview", apiTokens: [az-res],'
                          ' modelMapping: {"gpt-4o*": dep-4o}',
        "claude": f'type: claude, baseUrl: "{fake}", apiTokens: [sk-ant-claude]',
        "gemini": f'type: gemini, baseUrl: "{fake}", apiTokens: [gem-key]',
        "gemini-mapped": f'type: gemini, baseUrl: "{fake}", apiTokens: [gem-key],'
                         f" modelMapping: {{my-gem: {GEMINI_MODEL}}},"
                         " customSettings: [{name: max_tokens, value: 64},"
                         " {name: labels, value: {team: a}, mode: raw}],"
                         " geminiSafetySetting: {HARM_CATEGORY_HARASSMENT: BLOCK_ONLY_HIGH}",
        "ollama": f'type: ollama, baseUrl: "{fake}/ollama/v1"',
        **{t: f'type: {t}, baseUrl: "{fake}/{t}/v1", apiTokens: [sk-{t}]' for t in OPENAI_FAMILY},
        "mock": "type: mock",
        # A base URL with user info: sent as Basic auth, unless the key goes in Authorization.
        "basic": f'type: ollama, baseUrl: "{with_user_info(fake)}/basic/v1"',
        "basic-keyed": f'type: openai, baseUrl: "{with_user_info(fake)}/keyed/v1", apiTokens: [sk-keyed]',
    }  # fmt: skip
    return "\n".join([
        'storage: {database: "sqlite:///./tollway.db"}',
        "providers:", *(f"  - {{id: {i}, {fields}}}" for i, fields in providers.items()),
        "routes:", *(f"  - {{name: {i}, path_prefix: /p/{i}/v1/, provider: {i}}}" for i in providers),
        # Gemini's own API as its SDK calls it: the version is in the client's path.
        "  - {name: gemini-native, path_prefix: /p/gemini-native/, provider: gemini}",
        "  - {name: gemini-mapped-native, path_prefix: /p/gemini-mapped-native/, provider: gemini-mapped}",
        "plugins:",
        "  - name: key-auth",
        "    defaultConfig:",
        "      keys: [authorization, x-api-key, x-goog-api-key]",
        f"      consumers: [{{name: app, credential: {CLIENT_KEY}}}]",
    ])  # fmt: skip


@pytest.fixture(scope="module")
def shared_fake() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(shared_fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = serve_gateway(tmp_path_factory.mktemp("providers"), config(shared_fake.url))
    yield proc
    assert proc.stop() == 0


@pytest.fixture
def fake(shared_fake: FakeProvider) -> FakeProvider:
    shared_fake.reset()
    return shared_fake


SYSTEM = "You are a terse assistant. Answer in one sentence."
USER = "What is the capital of France?"
MESSAGES: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
ANTHROPIC_MESSAGES: list[Any] = [{"role": "user", "content": USER}]
# What the transcripts answer: the plain text, and the streamed one.
TEXT = "The capital of France is Paris."
STREAMED_TEXT = "The capital of France is Paris — café société."
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key", "x-goog-api-key")


def credentials(seen: Seen) -> dict[str, str]:
    """Every credential header the provider got (each must come once)."""
    found = {name: seen.header(name) for name in CREDENTIAL_HEADERS}
    assert not any(CLIENT_KEY in value for _, value in seen.headers), "the client's key reached the provider"
    return {k: v for k, v in found.items() if v is not None}


def openai_sdk(gw: Proc, provider: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/p/{provider}/v1", api_key=CLIENT_KEY, max_retries=0, timeout=10)


def anthropic_sdk(gw: Proc, provider: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=f"{gw.url}/p/{provider}", api_key=CLIENT_KEY, max_retries=0, timeout=10)


def chat(gw: Proc, provider: str, model: str, stream: bool, **extra: Any) -> tuple[str, str, Any]:
    """An OpenAI SDK chat call: (request id, the answer's text, its usage)."""
    rid = new_request_id()
    with openai_sdk(gw, provider) as sdk:
        headers = {"x-request-id": rid}
        if not stream:
            reply = sdk.chat.completions.create(model=model, messages=MESSAGES, extra_headers=headers, **extra)
            return rid, reply.choices[0].message.content or "", reply.usage
        chunks = list(sdk.chat.completions.create(model=model, messages=MESSAGES, stream=True,
                                                  stream_options={"include_usage": True},
                                                  extra_headers=headers, **extra))  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return rid, text, chunks[-1].usage


def message(gw: Proc, provider: str, model: str, stream: bool, **extra: Any) -> tuple[str, Any]:
    """An Anthropic SDK Messages call: (request id, the whole message)."""
    rid = new_request_id()
    with anthropic_sdk(gw, provider) as sdk:
        fields: dict[str, Any] = {"model": model, "max_tokens": 64, "system": SYSTEM, "messages": ANTHROPIC_MESSAGES,
                                  "extra_headers": {"x-request-id": rid}, **extra}  # fmt: skip
        if not stream:
            return rid, sdk.messages.create(**fields)
        with sdk.messages.stream(**fields) as events:
            return rid, events.get_final_message()


def tokens(usage: Any) -> tuple[int, int]:
    return usage.prompt_tokens, usage.completion_tokens


def recorded(gw: Proc, rid: str, provider: str) -> tuple[int, int]:
    """(input, output) tokens of the call's usage record, once its access-log line and
    its record both say it was served by ``provider`` (on the route of the same name)."""
    record = usage_record(gw, rid)
    assert (record["status"], record["provider"], record["consumer"]) == (200, provider, "app")
    assert record["tokens_estimated"] is False
    gw.wait_for_stdout(lambda lines: any(rid in line for line in lines))
    [logged] = [line for line in gw.access_log() if line["request_id"] == rid]
    assert (logged["route"], logged["consumer"], logged["status"]) == (provider, "app", 200)
    return record["input_tokens"], record["output_tokens"]


# ---- the OpenAI-compatible types -------------------------------------------------------

# (provider id, path under the fake, query, credential headers, model in the body)
OPENAI_STYLE = [
    ("openai", "/openai/v1/chat/completions", {}, {"authorization": "Bearer sk-openai"}, "gpt-4o"),
    ("azure-full", "/openai/deployments/dep-full/chat/completions", {"api-version": "2024-06-01"},
     {"api-key": "az-full"}, "gpt-4o"),
    ("azure-resource", "/openai/deployments/dep-4o/chat/completions", {"api-version": "2025-01-01-preview"},
     {"api-key": "az-res"}, "dep-4o"),
    ("ollama", "/ollama/v1/chat/completions", {}, {}, "gpt-4o"),
    *((t, f"/{t}/v1/chat/completions", {}, {"authorization": f"Bearer sk-{t}"}, "gpt-4o") for t in OPENAI_FAMILY),
    ("basic", "/basic/v1/chat/completions", {}, {"authorization": BASIC}, "gpt-4o"),
    ("basic-keyed", "/keyed/v1/chat/completions", {}, {"authorization": "Bearer sk-keyed"}, "gpt-4o"),
]  # fmt: skip


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(("provider", "path", "query", "auth", "model"), OPENAI_STYLE, ids=[p[0] for p in OPENAI_STYLE])
def test_openai_style_provider(
    gw: Proc, fake: FakeProvider, provider: str, path: str, query: dict[str, str], auth: dict[str, str],
    model: str, stream: bool,
) -> None:  # fmt: skip
    rid, text, usage = chat(gw, provider, "gpt-4o", stream, temperature=0.2, max_tokens=64)
    assert text == TEXT
    assert tokens(usage) == (1117, 8)
    [seen] = fake.seen
    assert (seen.method, seen.path, seen.params) == ("POST", path, query)
    assert credentials(seen) == auth
    sent: dict[str, Any] = {"model": model, "messages": MESSAGES, "temperature": 0.2, "max_tokens": 64}
    if stream:
        sent |= {"stream": True, "stream_options": {"include_usage": True}}
    assert seen.json() == sent
    assert recorded(gw, rid, provider) == (1117, 8)
    assert usage_record(gw, rid)["model_upstream"] == model


@pytest.mark.parametrize(("provider", "auth"), [("basic", BASIC), ("basic-keyed", "Bearer sk-keyed")])
def test_a_head_request_through_a_base_url_with_user_info(
    gw: Proc, fake: FakeProvider, provider: str, auth: str
) -> None:
    # HEAD goes through the other HTTP client (aiohttp), which refused a URL with user
    # info beside an Authorization header: a 500. (Not a model list's HEAD, which the
    # gateway answers from the provider's GET: the fake's 404, relayed.)
    path = "basic" if provider == "basic" else "keyed"
    answer = httpx.head(f"{gw.url}/p/{provider}/v1/vector_stores", headers={"authorization": f"Bearer {CLIENT_KEY}"})
    assert answer.status_code == 404
    [seen] = fake.seen
    assert (seen.method, seen.path) == ("HEAD", f"/{path}/v1/vector_stores")
    assert credentials(seen) == {"authorization": auth}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_the_mock_type_without_a_base_url_answers_in_process(gw: Proc, fake: FakeProvider, stream: bool) -> None:
    rid, text, usage = chat(gw, "mock", "mock-gpt", stream)
    truth = replies.chat_completion({"model": "mock-gpt", "messages": MESSAGES}, ident="x", created=0)
    assert text == truth["choices"][0]["message"]["content"]
    assert text.startswith("This is a mock reply to: What is the capital")
    want = (truth["usage"]["prompt_tokens"], truth["usage"]["completion_tokens"])
    assert tokens(usage) == want
    assert fake.seen == []
    assert recorded(gw, rid, "mock") == want


# ---- claude ----------------------------------------------------------------------------

CLAUDE_AUTH = {"x-api-key": "sk-ant-claude"}
CLAUDE_MODEL = "claude-sonnet-4-20250514"


# What the Anthropic SDK sends as its anthropic-version (it goes on as sent).
SDK_VERSION = str(anthropic.Anthropic(api_key="unused").default_headers["anthropic-version"])


def assert_claude_call(seen: Seen, version: str = "2023-06-01") -> None:
    assert (seen.method, seen.path, seen.query) == ("POST", "/v1/messages", "")
    assert credentials(seen) == CLAUDE_AUTH
    assert seen.all("anthropic-version") == [version]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_claude_with_the_openai_sdk(gw: Proc, fake: FakeProvider, stream: bool) -> None:
    rid, text, usage = chat(gw, "claude", CLAUDE_MODEL, stream, temperature=0.2)
    [seen] = fake.seen
    assert_claude_call(seen)
    sent: dict[str, Any] = {"model": CLAUDE_MODEL, "max_tokens": 4096, "system": SYSTEM,
                            "messages": [{"role": "user", "content": USER}], "temperature": 0.2}  # fmt: skip
    if stream:
        sent["stream"] = True
    assert seen.json() == sent
    # Anthropic's input_tokens exclude the 1024 cache reads that OpenAI's prompt_tokens include.
    want = (1045, 12) if stream else (1045, 10)
    assert text == (STREAMED_TEXT if stream else TEXT)
    assert tokens(usage) == want
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 1024
    assert recorded(gw, rid, "claude") == want


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_claude_with_the_anthropic_sdk(gw: Proc, fake: FakeProvider, stream: bool) -> None:
    rid, answer = message(gw, "claude", CLAUDE_MODEL, stream)
    [seen] = fake.seen
    assert_claude_call(seen, SDK_VERSION)  # the client's own anthropic-version, not the default
    sent: dict[str, Any] = {"model": CLAUDE_MODEL, "max_tokens": 64, "system": SYSTEM,
                            "messages": ANTHROPIC_MESSAGES}  # fmt: skip
    if stream:
        sent["stream"] = True
    assert seen.json() == sent
    assert [b.text for b in answer.content] == [STREAMED_TEXT if stream else TEXT]
    assert answer.stop_reason == "end_turn"
    output = 12 if stream else 10
    assert (answer.usage.input_tokens, answer.usage.cache_read_input_tokens) == (21, 1024)
    assert answer.usage.output_tokens == output
    assert recorded(gw, rid, "claude") == (1045, output)


# ---- gemini ----------------------------------------------------------------------------

GEMINI_MODEL = "gemini-2.5-flash"


def assert_gemini_call(seen: Seen, stream: bool) -> None:
    method = "streamGenerateContent" if stream else "generateContent"
    assert (seen.method, seen.path) == ("POST", f"/v1beta/models/{GEMINI_MODEL}:{method}")
    assert seen.params == ({"alt": "sse"} if stream else {})
    assert credentials(seen) == {"x-goog-api-key": "gem-key"}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_gemini_with_the_openai_sdk(gw: Proc, fake: FakeProvider, stream: bool) -> None:
    rid, text, usage = chat(gw, "gemini", GEMINI_MODEL, stream, temperature=0.2, max_tokens=64)
    [seen] = fake.seen
    assert_gemini_call(seen, stream)
    assert seen.json() == {
        "contents": [{"role": "user", "parts": [{"text": USER}]}],
        "systemInstruction": {"parts": [{"text": SYSTEM}]},
        "generationConfig": {"maxOutputTokens": 64, "temperature": 0.2},
    }
    # Gemini's thoughts (45) count as output, as OpenAI counts reasoning tokens.
    want = (1040, 56) if stream else (1040, 53)
    assert text == (STREAMED_TEXT if stream else TEXT)
    assert tokens(usage) == want
    assert recorded(gw, rid, "gemini") == want


def gemini_native(gw: Proc, route: str, model: str, stream: bool, body: dict[str, Any]) -> str:
    """One call of Gemini's own API as Google's SDK makes it, on ``route``; its request id."""
    method = "streamGenerateContent" if stream else "generateContent"
    rid = f"{route}-{model}-{method}"
    r = httpx.post(
        f"{gw.url}/p/{route}/v1beta/models/{model}:{method}",
        params={"alt": "sse"} if stream else None,
        json=body,
        headers={"authorization": f"Bearer {CLIENT_KEY}", "x-request-id": rid},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return rid


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_geminis_own_api_reaches_the_provider_at_its_own_version_once(
    gw: Proc, fake: FakeProvider, stream: bool
) -> None:
    # As Google's SDK calls it (``/v1beta/models/<model>:generateContent``): the provider
    # puts its version before the API path once, never a second time.
    body = {"contents": [{"role": "user", "parts": [{"text": USER}]}]}
    rid = gemini_native(gw, "gemini-native", GEMINI_MODEL, stream, body)
    [seen] = fake.seen
    assert_gemini_call(seen, stream)
    assert seen.json() == body
    # Its usageMetadata is the record's (the last of a stream's, which are cumulative),
    # as for a chat call translated to Gemini: thoughts count as output.
    record = usage_record(gw, rid)
    assert (record["input_tokens"], record["output_tokens"]) == ((1040, 56) if stream else (1040, 53))
    assert record["model_requested"] == GEMINI_MODEL and record["tokens_estimated"] is False
    assert record["api"] == "chat"  # what the method does, not the model list's "models"


def _google(gw: Proc, route: str, key: str = CLIENT_KEY) -> genai.Client:
    """Google's own SDK, its base URL at ``route`` (it adds ``/v1beta/…``)."""
    return genai.Client(api_key=key, http_options=genai_types.HttpOptions(base_url=f"{gw.url}/p/{route}/"))


def test_googles_sdk_lists_pages_and_calls_through_the_gateway(gw: Proc, fake: FakeProvider) -> None:
    # Google's SDK read the gateway's model list in OpenAI's shape: no ``models`` member,
    # so it listed nothing.
    client = _google(gw, "gemini-mapped-native")
    listed = {m.name: m for m in client.models.list(config={"page_size": 1})}  # one a page: the SDK pages
    # The provider's own entries as Google gave them (limits, methods), and the alias
    # its mapping names, callable through the gateway.
    flash = listed["models/gemini-2.5-flash"]
    assert (flash.display_name, flash.input_token_limit) == ("Gemini 2.5 Flash", 1048576)
    assert "generateContent" in (flash.supported_actions or [])
    assert "generateContent" in (listed["models/my-gem"].supported_actions or [])
    answer = client.models.generate_content(model="my-gem", contents=USER)
    assert answer.text and answer.usage_metadata is not None
    [seen] = [s for s in fake.seen if s.method == "POST"]
    assert credentials(seen) == {"x-goog-api-key": "gem-key"}  # the client's key never went upstream
    stranger = _google(gw, "gemini-native", "not-a-key")
    with pytest.raises(genai_errors.ClientError) as refused:
        stranger.models.generate_content(model=GEMINI_MODEL, contents=USER)
    assert (refused.value.code, refused.value.status) == (401, "UNAUTHENTICATED")


@pytest.mark.parametrize("method", ["generateContent", "streamGenerateContent"])
def test_a_gemini_client_is_refused_in_googles_error_shape(gw: Proc, fake: FakeProvider, method: str) -> None:
    # The gateway's own refusals answered Google's SDK in OpenAI's shape: no ``status``
    # and a string ``code``, where the SDK reads google.rpc's code and status names.
    r = httpx.post(
        f"{gw.url}/p/gemini-native/v1beta/models/{GEMINI_MODEL}:{method}",
        params={"alt": "sse"},
        json={"contents": [{"role": "user", "parts": [{"text": USER}]}]},
        headers={"authorization": "Bearer not-a-key"},
        timeout=10,
    )
    assert r.status_code == 401
    error = r.json()["error"]
    assert (error["code"], error["status"]) == (401, "UNAUTHENTICATED")
    assert isinstance(error["message"], str) and error["message"]
    assert "not-a-key" not in r.text and fake.seen == []


@pytest.mark.parametrize("spelling", ["key", "k%65y", "KEY"])
def test_a_gemini_clients_own_key_in_the_query_never_reaches_google(
    gw: Proc, fake: FakeProvider, spelling: str
) -> None:
    # Google takes an API key as ``?key=`` too: a client's own went to Google beside the
    # provider's header (nothing but key-auth, when it reads that parameter, took it out).
    r = httpx.post(
        f"{gw.url}/p/gemini-native/v1beta/models/{GEMINI_MODEL}:streamGenerateContent?{spelling}=client-own&alt=sse",
        json={"contents": [{"role": "user", "parts": [{"text": USER}]}]},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    [seen] = fake.seen
    assert_gemini_call(seen, True)  # alt=sse kept, the provider's key in its header
    assert "client-own" not in seen.query


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_geminis_own_api_gets_the_providers_mapping_and_settings(gw: Proc, fake: FakeProvider, stream: bool) -> None:
    # A Google SDK client's call went out as it came: an alias unmapped (Google: 404), a
    # mapping meant to move it to another model bypassed, the provider's settings and
    # safety settings missing, and its record unpriced under the alias.
    body = {"contents": [{"role": "user", "parts": [{"text": USER}]}], "generationConfig": {"temperature": 0.5}}
    rid = gemini_native(gw, "gemini-mapped-native", "my-gem", stream, body)
    [seen] = fake.seen
    assert_gemini_call(seen, stream)  # at the mapped model
    assert seen.json() == {
        **body,
        "generationConfig": {"temperature": 0.5, "maxOutputTokens": 64},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}],
        "labels": {"team": "a"},
    }
    record = usage_record(gw, rid)
    assert (record["model_requested"], record["model_upstream"]) == ("my-gem", GEMINI_MODEL)
    assert record["stream"] is stream and record["cost_usd"] is not None and record["cost_usd"] > 0


@pytest.mark.parametrize("fault", ["drop", "cut", "error"])
def test_geminis_own_stream_cut_short_is_recorded_as_the_providers_failure(
    gw: Proc, fake: FakeProvider, fault: Fault
) -> None:
    # It was recorded as a clean 200 (a stream not even marked as one), the text sent
    # before an error event uncounted: only a translated call's stream was watched.
    fake.next_answers(fault)
    rid = f"gemini-native-{fault}"
    with httpx.stream(
        "POST",
        f"{gw.url}/p/gemini-native/v1beta/models/{GEMINI_MODEL}:streamGenerateContent",
        params={"alt": "sse"},
        json={"contents": [{"role": "user", "parts": [{"text": USER}]}]},
        headers={"authorization": f"Bearer {CLIENT_KEY}", "x-request-id": rid},
        timeout=10,
    ) as r:
        assert r.status_code == 200
        try:
            body = b"".join(r.iter_bytes())
        except httpx.HTTPError:  # the gateway may end the cut body as the provider did
            body = b""
    record = usage_record(gw, rid)
    assert (record["status"], record["reason"], record["stream"]) == (502, "ai-proxy.bad_upstream_response", True)
    if fault == "error":
        assert b"fake error mid-stream" in body
    assert record["output_tokens"] > 0  # the text the client had, estimated at least


@pytest.mark.parametrize("fault", [None, "cut", "error"])
def test_geminis_own_stream_without_alt_sse_is_relayed_as_it_comes(
    gw: Proc, fake: FakeProvider, fault: Fault | None
) -> None:
    """Google's REST default streams one JSON array, a chunk at a time: the gateway held
    it all and answered at the end (a judge's finding), and a provider that broke off
    mid-array lost the client every chunk it had sent. Now each chunk goes on as it
    comes, in the array the client asked for; one cut short ends with Google's error
    object as its last element, recorded as the provider's failure."""
    fake.array_gap_s = 0.4
    if fault is not None:
        fake.next_answers(fault)
    rid = new_request_id()
    arrived: list[tuple[float, bytes]] = []
    with httpx.stream(
        "POST",
        f"{gw.url}/p/gemini-native/v1beta/models/{GEMINI_MODEL}:streamGenerateContent",
        json={"contents": [{"role": "user", "parts": [{"text": USER}]}]},
        headers={"authorization": f"Bearer {CLIENT_KEY}", "x-request-id": rid},
        timeout=10,
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        assert "content-length" not in r.headers
        arrived.extend((time.monotonic(), piece) for piece in r.iter_bytes() if piece)
    [seen] = fake.seen
    assert seen.params == {}  # (asked as the client asked: the array)
    chunks = json.loads(b"".join(piece for _, piece in arrived))
    texts = [c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks if "candidates" in c]
    record = usage_record(gw, rid)
    assert record["stream"] is True
    # The first chunk reached the client before the provider had sent the last.
    assert arrived[-1][0] - arrived[0][0] > 0.3, [t - arrived[0][0] for t, _ in arrived]
    if fault is None:
        assert "".join(texts) == STREAMED_TEXT
        assert (record["status"], record["input_tokens"], record["output_tokens"]) == (200, 1040, 11 + 45)
        assert record["tokens_estimated"] is False
        return
    assert texts == ["The capital", " of France is Paris"]  # what the provider sent, as it sent it
    assert chunks[-1]["error"]["status"] == "UNAVAILABLE"
    assert (record["status"], record["reason"]) == (502, "ai-proxy.bad_upstream_response")
    assert record["output_tokens"] >= 7  # (the chunks it had, at least)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_gemini_with_the_anthropic_sdk(gw: Proc, fake: FakeProvider, stream: bool) -> None:
    rid, answer = message(gw, "gemini", GEMINI_MODEL, stream)
    [seen] = fake.seen
    assert_gemini_call(seen, stream)
    assert seen.json() == {
        "contents": [{"role": "user", "parts": [{"text": USER}]}],
        "systemInstruction": {"parts": [{"text": SYSTEM}]},
        "generationConfig": {"maxOutputTokens": 64},
    }
    assert [b.text for b in answer.content] == [STREAMED_TEXT if stream else TEXT]
    assert answer.stop_reason == "end_turn"
    output = 56 if stream else 53
    assert (answer.usage.input_tokens, answer.usage.cache_read_input_tokens) == (1040 - 1024, 1024)
    assert answer.usage.output_tokens == output
    assert recorded(gw, rid, "gemini") == (1040, output)


# ---- tool calls from each protocol's transcripts ---------------------------------------

WEATHER_SCHEMA = {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather in a place",
                                      "parameters": WEATHER_SCHEMA}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
]  # fmt: skip
ANTHROPIC_TOOLS: list[Any] = [
    {"name": t["function"]["name"], "input_schema": t["function"]["parameters"]}
    | ({"description": t["function"]["description"]} if "description" in t["function"] else {})
    for t in TOOLS
]
# (provider, model, stream) → (text, [(tool, arguments)], usage) as the transcript says.
TOOL_CALLS = {
    ("claude", CLAUDE_MODEL, False): (
        "I'll check tomorrow's forecast for Paris.",
        [("get_weather", {"location": "Paris, France", "unit": "celsius", "day": "tomorrow"})], (617, 73)),
    ("claude", CLAUDE_MODEL, True): (
        "Okay, let's check the weather for Paris:",
        [("get_weather", {"location": "Paris, France", "unit": "celsius"}), ("get_time", {"timezone": "Europe/Paris"})],
        (472, 89)),
    ("gemini", GEMINI_MODEL, False): (
        "", [("get_weather", {"location": "Paris, France", "unit": "celsius", "day": "tomorrow"})], (398, 83)),
    ("gemini", GEMINI_MODEL, True): (
        "Checking Paris.",
        [("get_weather", {"location": "Paris, France", "unit": "celsius"}), ("get_time", {"timezone": "Europe/Paris"})],
        (398, 97)),
    ("openai", "gpt-4o", False): (
        "", [("get_weather", {"location": "Paris, France", "unit": "celsius", "day": "tomorrow"})], (412, 24)),
    ("openai", "gpt-4o", True): (
        "",
        [("get_weather", {"location": "Paris, France", "day": "tomorrow"}), ("get_time", {"timezone": "Europe/Paris"})],
        (412, 41)),
}  # fmt: skip
TOOL_CASES = sorted(TOOL_CALLS)


def tool_case_id(case: tuple[str, str, bool]) -> str:
    return f"{case[0]}-{'stream' if case[2] else 'plain'}"


@pytest.mark.parametrize("case", [c for c in TOOL_CASES if c[0] != "openai"], ids=tool_case_id)
def test_tool_calls_reach_the_openai_sdk(gw: Proc, fake: FakeProvider, case: tuple[str, str, bool]) -> None:
    provider, model, stream = case
    text, calls, want = TOOL_CALLS[case]
    rid = new_request_id()
    with openai_sdk(gw, provider) as sdk:
        args: dict[str, Any] = {"model": model, "messages": MESSAGES, "tools": TOOLS,
                                "extra_headers": {"x-request-id": rid}}  # fmt: skip
        if stream:
            chunks = list(sdk.chat.completions.create(stream=True, stream_options={"include_usage": True}, **args))
            got_text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assembled: dict[int, dict[str, str]] = {}
            for c in chunks:
                for call in (c.choices[0].delta.tool_calls or []) if c.choices else []:
                    slot = assembled.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                    slot["id"] += call.id or ""
                    slot["name"] += (call.function and call.function.name) or ""
                    slot["arguments"] += (call.function and call.function.arguments) or ""
            got_calls = [(s["name"], json.loads(s["arguments"])) for _, s in sorted(assembled.items())]
            ids = [s["id"] for _, s in sorted(assembled.items())]
            finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
            usage = chunks[-1].usage
        else:
            reply = sdk.chat.completions.create(**args)
            got_text = reply.choices[0].message.content or ""
            tool_calls = reply.choices[0].message.tool_calls or []
            got_calls = [(c.function.name, json.loads(c.function.arguments)) for c in tool_calls]
            ids = [c.id for c in tool_calls]
            finish = [reply.choices[0].finish_reason]
            usage = reply.usage
    assert (got_text, got_calls, finish) == (text, calls, ["tool_calls"])
    assert all(ids) and len(set(ids)) == len(ids)  # every call has its own id to answer
    assert tokens(usage) == want
    assert recorded(gw, rid, provider) == want
    sent = fake.seen[0].json()
    if provider == "claude":
        assert sent["tools"] == ANTHROPIC_TOOLS
    else:
        declarations = [{"name": "get_weather", "description": "Weather in a place",
                         "parametersJsonSchema": WEATHER_SCHEMA},
                        {"name": "get_time", "parametersJsonSchema": {"type": "object", "properties": {}}}]  # fmt: skip
        assert sent["tools"] == [{"functionDeclarations": declarations}]


@pytest.mark.parametrize("case", [c for c in TOOL_CASES if c[0] != "claude"], ids=tool_case_id)
def test_tool_calls_reach_the_anthropic_sdk(gw: Proc, fake: FakeProvider, case: tuple[str, str, bool]) -> None:
    provider, model, stream = case
    text, calls, want = TOOL_CALLS[case]
    rid, answer = message(gw, provider, model, stream, tools=ANTHROPIC_TOOLS)
    assert "".join(b.text for b in answer.content if b.type == "text") == text
    assert [(b.name, b.input) for b in answer.content if b.type == "tool_use"] == calls
    assert answer.stop_reason == "tool_use"
    cached = answer.usage.cache_read_input_tokens or 0
    assert (answer.usage.input_tokens + cached, answer.usage.output_tokens) == want
    assert recorded(gw, rid, provider) == want


# ---- model lists -----------------------------------------------------------------------

MODEL_LISTS = [
    ("openai", "/openai/v1/models", {}, {"authorization": "Bearer sk-openai"}, ["gpt-4o", "gpt-4o-mini"]),
    ("claude", "/v1/models", {}, CLAUDE_AUTH, [CLAUDE_MODEL, "claude-3-5-haiku-20241022"]),
    ("gemini", "/v1beta/models", {"pageSize": "1000"}, {"x-goog-api-key": "gem-key"},
     ["gemini-2.5-flash", "gemini-2.5-pro", "text-embedding-004"]),  # (it embeds: listed, as OpenAI lists its own)
]  # fmt: skip


def test_a_model_list_keeps_what_the_provider_says_of_each_model_in_either_shape(gw: Proc, fake: FakeProvider) -> None:
    # Judge G: the lists gave every model created 0, owned_by "tollway", its id as its
    # display name and 1970 as its date, whatever the provider said.
    with openai_sdk(gw, "openai") as sdk:
        first = sdk.models.list().data[0]
    assert (first.id, first.created, first.owned_by) == ("gpt-4o", 1715367049, "system")
    with anthropic_sdk(gw, "claude") as sdk:
        claude = sdk.models.list().data[0]
    assert (claude.id, claude.display_name, claude.created_at.isoformat()) == (
        CLAUDE_MODEL, "Claude Sonnet 4", "2025-05-22T00:00:00+00:00"
    )  # fmt: skip
    with anthropic_sdk(gw, "gemini") as sdk:
        gemini = sdk.models.list().data[0]
    assert (gemini.id, gemini.display_name) == ("gemini-2.5-flash", "Gemini 2.5 Flash")
    with openai_sdk(gw, "claude") as sdk:  # an Anthropic model's date, in OpenAI's shape
        assert sdk.models.list().data[0].created == 1747872000


@pytest.mark.parametrize(
    ("client", "provider", "model", "shown"),
    [
        ("openai", "gemini", "gemini-2.5-flash", ("gemini-2.5-flash", 0, "tollway")),
        ("openai", "claude", CLAUDE_MODEL, (CLAUDE_MODEL, 1747872000, "tollway")),
        ("anthropic", "openai", "gpt-4o", ("gpt-4o", "gpt-4o", "2024-05-10T18:50:49+00:00")),
        ("anthropic", "gemini", "gemini-2.5-pro", ("gemini-2.5-pro", "Gemini 2.5 Pro", "1970-01-01T00:00:00+00:00")),
    ],
)
def test_a_models_details_come_in_the_shape_its_list_gave_it(
    gw: Proc, fake: FakeProvider, client: str, provider: str, model: str, shown: tuple[Any, ...]
) -> None:
    # Judge G: GET /v1/models/{id} came in the provider's own shape, so the OpenAI SDK read
    # a Gemini model the list had just offered as Model(id=None).
    if client == "openai":
        with openai_sdk(gw, provider) as sdk:
            found: Any = sdk.models.retrieve(model)
        assert (found.id, found.created, found.owned_by) == shown
    else:
        with anthropic_sdk(gw, provider) as sdk:
            found = sdk.models.retrieve(model)
        assert (found.id, found.display_name, found.created_at.isoformat()) == shown
        assert found.type == "model"
    [seen] = fake.seen
    assert seen.method == "GET" and seen.path.endswith("/models/" + model)


@pytest.mark.parametrize("path", ["/p/openai/v1/models", "/p/claude/v1/models", "/p/gemini/v1/models/gemini-2.5-pro"])
@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_a_head_of_a_model_list_or_details_has_the_headers_of_its_get(
    gw: Proc, fake: FakeProvider, path: str, client: str
) -> None:
    # HEAD /v1/models answered content-length 0 where GET gave the list's length: it went
    # to the provider as HEAD, whose answer has no list in it.
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    if client == "anthropic":
        headers["anthropic-version"] = "2023-06-01"
    with httpx.Client(base_url=gw.url, headers=headers, timeout=10) as http:
        got = http.get(path)
        head = http.head(path)
        again = http.get(path)  # the same connection: HEAD left no body on it
    assert (got.status_code, head.status_code, again.status_code) == (200, 200, 200)
    assert int(head.headers["content-length"]) == len(got.content) > 0
    assert head.headers["content-type"] == got.headers["content-type"] == "application/json"
    assert head.content == b"" and again.content == got.content


@pytest.mark.parametrize(("provider", "path", "query", "auth", "models"), MODEL_LISTS, ids=[m[0] for m in MODEL_LISTS])
def test_model_lists_come_from_the_provider(
    gw: Proc, fake: FakeProvider, provider: str, path: str, query: dict[str, str], auth: dict[str, str],
    models: list[str],
) -> None:  # fmt: skip
    with openai_sdk(gw, provider) as sdk:
        listed = [m.id for m in sdk.models.list()]
    assert listed == models
    [seen] = fake.seen
    assert (seen.method, seen.path, seen.params) == ("GET", path, query)
    assert credentials(seen) == auth
    if provider == "claude":
        assert seen.all("anthropic-version") == ["2023-06-01"]


def test_an_anthropic_clients_version_and_beta_headers_reach_claude_as_sent(gw: Proc, fake: FakeProvider) -> None:
    # SPEC §9: anthropic-version and anthropic-beta go on as the client sent them; the
    # default version only stands in for a client that sent none.
    beta = "prompt-caching-2024-07-31,output-128k-2025-02-19"
    with anthropic_sdk(gw, "claude") as sdk:
        sdk.messages.create(
            model=CLAUDE_MODEL, max_tokens=64, system=SYSTEM, messages=ANTHROPIC_MESSAGES,
            extra_headers={"anthropic-version": "2024-10-22", "anthropic-beta": beta},
        )  # fmt: skip
    body = {"model": CLAUDE_MODEL, "max_tokens": 64, "messages": ANTHROPIC_MESSAGES}
    httpx.post(f"{gw.url}/p/claude/v1/messages", json=body, headers={"x-api-key": CLIENT_KEY}, timeout=10)
    sdk_call, bare_call = fake.seen
    assert (sdk_call.all("anthropic-version"), sdk_call.all("anthropic-beta")) == (["2024-10-22"], [beta])
    assert (bare_call.all("anthropic-version"), bare_call.all("anthropic-beta")) == (["2023-06-01"], [])
    assert credentials(sdk_call) == credentials(bare_call) == CLAUDE_AUTH


# ---- provider errors and broken streams ------------------------------------------------


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
@pytest.mark.parametrize(("provider", "model"), [("claude", CLAUDE_MODEL), ("gemini", GEMINI_MODEL)])
def test_a_providers_429_reaches_each_sdk_in_its_own_shape(
    gw: Proc, fake: FakeProvider, provider: str, model: str, sdk: str
) -> None:
    fake.always(429)
    if sdk == "openai":
        with openai_sdk(gw, provider) as client, pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model=model, messages=MESSAGES)
        assert caught.value.message.endswith("fake error 429")
        assert caught.value.body == {"message": "fake error 429", "type": "rate_limit_error",
                                     "code": "rate_limit_exceeded", "param": None}  # fmt: skip
    else:
        with anthropic_sdk(gw, provider) as client, pytest.raises(anthropic.RateLimitError) as failed:
            client.messages.create(model=model, max_tokens=64, messages=ANTHROPIC_MESSAGES)
        assert failed.value.body == {
            "type": "error",
            "error": {"type": "rate_limit_error", "message": "fake error 429"},
        }
    assert len(fake.seen) == 1


def test_a_translated_stream_that_breaks_keeps_the_tokens_the_provider_reported(gw: Proc, fake: FakeProvider) -> None:
    fake.always("drop")  # after the first event, which reports 1040 prompt and 2 + 45 output tokens
    rid = new_request_id()
    pieces: list[str] = []
    with openai_sdk(gw, "gemini") as sdk:
        stream = sdk.chat.completions.create(model=GEMINI_MODEL, messages=MESSAGES, stream=True,
                                             extra_headers={"x-request-id": rid})  # fmt: skip
        with pytest.raises(openai.APIError) as caught:
            for chunk in stream:
                pieces.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(pieces) == "The capital"
    assert "provider 'gemini' failed" in caught.value.message
    record = usage_record(gw, rid)
    assert (record["status"], record["reason"]) == (502, "ai-proxy.bad_upstream_response")
    assert (record["input_tokens"], record["output_tokens"], record["tokens_estimated"]) == (1040, 47, False)
