"""Per-consumer model access (allow_models): refused models and the filtered model list."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from tests.conftest import GatewayFactory, Proc
from tests.support.fake_provider import usage_record


def _config(mock_url: str) -> str:
    return f"""
providers:
  - id: up
    type: openai
    apiTokens: [sk-provider]
    baseUrl: {mock_url}/v1
    modelMapping: {{"team-default": "mock-gpt-mini"}}
routes:
  - name: v1
    path_prefix: /v1/
    provider: up
  - name: gemini-style
    path_prefix: /v1beta/
    provider: up
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization, x-api-key]
      consumers:
        - {{name: alice, credential: k-alice, allow_models: ["mock-gpt*", "team-default"]}}
        - {{name: bob, credential: k-bob}}
"""


@pytest.fixture
def gw(gateway: GatewayFactory, mock_llm: Proc) -> Proc:
    return gateway(_config(mock_llm.url))


def test_allowed_model_is_served(gw: Proc) -> None:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="k-alice") as client:
        answer = client.chat.completions.create(model="mock-gpt-mini", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content


def test_other_model_is_refused_with_403_model_not_allowed(gw: Proc, mock_requests) -> None:  # type: ignore[no-untyped-def]
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="k-alice", max_retries=0) as client:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 403
    assert caught.value.response.headers["x-tollway-reason"] == "key-auth.model_not_allowed"
    body = caught.value.response.json()
    assert body["error"]["code"] == "model_not_allowed"
    assert "gpt-4o" in body["error"]["message"]
    assert mock_requests() == [], "a refused model never reaches the provider"


def test_model_list_shows_only_what_the_consumer_may_use(gw: Proc) -> None:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="k-alice") as client:
        alice = sorted(m.id for m in client.models.list())
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="k-bob") as client:
        bob = sorted(m.id for m in client.models.list())
    assert alice == ["mock-gpt", "mock-gpt-mini", "team-default"]
    # bob has no allow_models: the provider's list plus the mapping's names.
    assert set(bob) >= {"mock-gpt", "mock-gpt-mini", "mock-claude", "mock-embed", "team-default"}


def test_unrestricted_consumer_may_use_any_model(gw: Proc) -> None:
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        headers={"authorization": "Bearer k-bob"},
        json={"model": "anything-at-all", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status_code == 200
    assert r.json()["model"] == "anything-at-all"


def test_a_models_details_are_refused_like_the_list_hides_them(gw: Proc, mock_requests) -> None:  # type: ignore[no-untyped-def]
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="k-alice", max_retries=0) as client:
        with pytest.raises(openai.NotFoundError) as caught:
            client.models.retrieve("gpt-4o")
    assert caught.value.response.headers["x-tollway-reason"] == "ai-proxy.no_model"
    assert "gpt-4o" in caught.value.message
    assert mock_requests() == [], "a model the consumer may not see is asked of no provider"


def test_anthropics_sdk_pages_through_the_same_models(gw: Proc) -> None:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="k-bob") as client:
        listed = [m.id for m in client.models.list()]
    with anthropic.Anthropic(base_url=gw.url, api_key="k-bob") as client:
        first = client.models.list(limit=2)
        assert [m.id for m in first.data] == listed[:2] and first.has_more
        paged = [m.id for m in client.models.list(limit=2)]  # the SDK follows after_id
    assert paged == listed


@pytest.mark.parametrize(
    "path",
    [
        "/v1beta/models/gemini-2.5-pro:generateContent",
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
        "/v1/models/gemini-2.5-pro:generateContent",
        "/v1/projects/p/locations/us/publishers/google/models/gemini-2.5-pro:generateContent",
        "/v1beta/Models/gemini-2.5-pro:generateContent",
        "/v1beta/tunedModels/gemini-2.5-pro:generateContent",
    ],
)
def test_a_model_named_in_the_path_is_held_to_allow_models(gw: Proc, mock_requests, path: str) -> None:  # type: ignore[no-untyped-def]
    # Gemini's own API names the model in the path, and such a call passes through as it
    # is: a consumer allowed one model must not reach another this way.
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    refused = httpx.post(gw.url + path, json=body, headers={"authorization": "Bearer k-alice"}, timeout=10)
    assert refused.status_code == 403
    assert refused.headers["x-tollway-reason"] == "key-auth.model_not_allowed"
    assert "gemini-2.5-pro" in refused.json()["error"]["message"]
    assert mock_requests() == [], "a refused model never reaches the provider"
    # An unrestricted consumer's call goes on to the provider (which does not know it).
    passed = httpx.post(gw.url + path, json=body, headers={"authorization": "Bearer k-bob"}, timeout=10)
    assert passed.headers.get("x-tollway-reason") != "key-auth.model_not_allowed"
    assert len(mock_requests()) == 1


HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": "gpt-4o", "messages": HI}),
        ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "hi"}),
        ("/v1/embeddings", {"model": "text-embedding-3-large", "input": "hi"}),
        ("/v1/moderations", {"model": "omni-moderation-latest", "input": "hi"}),
        ("/v1/images/generations", {"model": "gpt-image-1", "prompt": "a cat"}),
        ("/v1/audio/speech", {"model": "tts-1", "input": "hi", "voice": "alloy"}),
        ("/v1/responses", {"model": "gpt-5", "input": "hi"}),
        ("/v1/messages", {"model": "claude-opus-4-6", "max_tokens": 5, "messages": HI}),
        ("/v1/messages/count_tokens", {"model": "claude-opus-4-6", "messages": HI}),
        ("/v1/messages/batches", {"requests": [{"custom_id": "a", "params": {"model": "claude-opus-4-6"}}]}),
        ("/v1/messages/batches", {"requests": [
            {"custom_id": "a", "params": {"model": "mock-gpt"}}, {"custom_id": "b", "params": {"model": "o3"}},
        ]}),
    ],
)  # fmt: skip
def test_every_endpoint_that_names_a_model_holds_it_to_allow_models(  # type: ignore[no-untyped-def]
    gw: Proc, mock_requests, path: str, body: dict[str, object]
) -> None:
    refused = httpx.post(gw.url + path, json=body, headers={"authorization": "Bearer k-alice"}, timeout=10)
    assert refused.status_code == 403, refused.text
    assert refused.headers["x-tollway-reason"] == "key-auth.model_not_allowed"
    assert mock_requests() == [], "a refused model never reaches the provider"


def test_geminis_openai_compatible_path_is_the_chat_api(gw: Proc, mock_requests) -> None:  # type: ignore[no-untyped-def]
    # Google's OpenAI compatibility layer (an OpenAI SDK pointed at …/v1beta/openai/) is
    # the chat API to the plugins and the record: a pass-through under it would reach the
    # provider with no token count, no token limit and no mask.
    rid = "gemini-openai-layer"
    with openai.OpenAI(base_url=gw.url + "/v1beta/openai", api_key="k-bob") as client:
        answer = client.chat.completions.create(
            model="mock-gpt-mini", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-request-id": rid}
        )
    assert answer.usage is not None and answer.usage.prompt_tokens > 0
    assert [r["path"] for r in mock_requests()] == ["/v1/chat/completions"]
    record = usage_record(gw, rid)
    assert record["api"] == "chat" and record["model_requested"] == "mock-gpt-mini"
    assert (record["input_tokens"], record["output_tokens"]) == (
        answer.usage.prompt_tokens,
        answer.usage.completion_tokens,
    )
    # And a model it may not use is refused there as on /v1.
    with openai.OpenAI(base_url=gw.url + "/v1beta/openai", api_key="k-alice", max_retries=0) as client:
        with pytest.raises(openai.PermissionDeniedError):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/realtime/client_secrets", {"session": {"type": "realtime", "model": "gpt-realtime"}}),
        ("/v1/realtime/transcription_sessions", {"input_audio_transcription": {"model": "gpt-4o-transcribe"}}),
        ("/v1/evals/ev1/runs", {"data_source": {"type": "completions", "model": "o3"}}),
    ],
)
def test_a_model_named_below_the_top_level_is_held_to_allow_models(  # type: ignore[no-untyped-def]
    gw: Proc, mock_requests, path: str, body: dict[str, object]
) -> None:
    # APIs that name their model inside an object (a realtime session, whose client
    # secret the client then spends with directly; an eval run's data source).
    refused = httpx.post(gw.url + path, json=body, headers={"authorization": "Bearer k-alice"}, timeout=10)
    assert refused.status_code == 403 and refused.headers["x-tollway-reason"] == "key-auth.model_not_allowed"
    assert mock_requests() == []


def test_a_model_named_in_a_form_of_another_api_is_held_to_allow_models(gw: Proc, mock_requests) -> None:  # type: ignore[no-untyped-def]
    # Sora's /v1/videos takes a form: its model field is read as the images API's is.
    form = {"model": "sora-2-pro", "prompt": "a cat"}
    refused = httpx.post(gw.url + "/v1/videos", files={k: (None, v) for k, v in form.items()},
                         headers={"authorization": "Bearer k-alice"}, timeout=10)  # fmt: skip
    assert refused.status_code == 403 and refused.headers["x-tollway-reason"] == "key-auth.model_not_allowed"
    assert mock_requests() == []
