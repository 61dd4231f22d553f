"""The OpenAI Responses API through the gateway to an OpenAI provider (SPEC §9): routed by
its model (``model_providers``), and billed like chat: tokens, cached and reasoning
tokens and the answering model from the answer's ``usage``, or, streamed, from
``response.completed``; a client that closes after ``response.completed`` had the
whole answer (status 200).

The provider is a small fake of OpenAI's ``POST /v1/responses``, answering a JSON
response object or its event stream, written from OpenAI's API reference.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pydantic
import pytest

from tests.conftest import Proc
from tests.support.fake_provider import FakeProvider, new_request_id, serve_gateway, usage_record
from tests.support.responses_provider import MODEL, TEXT, ResponsesProvider


@pytest.fixture(scope="module")
def provider() -> Iterator[ResponsesProvider]:
    with ResponsesProvider() as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(provider: ResponsesProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    config = f"""
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: openai, type: openai, baseUrl: "{provider.url}/v1", apiTokens: [sk-openai]}}
  - {{id: other, type: openai, baseUrl: "http://127.0.0.1:9/v1", apiTokens: [sk-other]}}
routes:
  - name: v1
    path_prefix: /v1/
    providers: [other]
    model_providers: {{"gpt-4.1*": openai}}
  - {{name: direct, path_prefix: /direct/v1/, provider: openai}}
"""
    proc = serve_gateway(tmp_path_factory.mktemp("responses"), config)
    yield proc
    assert proc.stop() == 0


def _client(gw: Proc) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="client-key", max_retries=0, timeout=10)


def _billed(record: dict[str, Any]) -> tuple[Any, ...]:
    return (
        record["status"],
        record["model_requested"],
        record["model_upstream"],
        record["input_tokens"],
        record["cached_tokens"],
        record["output_tokens"],
        record["reasoning_tokens"],
        record["tokens_estimated"],
    )


WANT = (200, MODEL, MODEL, 1200, 1024, 57, 40, False)


def test_a_responses_call_is_routed_by_model_and_billed_from_its_usage(gw: Proc, provider: ResponsesProvider) -> None:
    rid = new_request_id()
    with _client(gw) as sdk:
        response = sdk.responses.create(
            model=MODEL, input="What is the capital of France?", extra_headers={"x-request-id": rid}
        )
    assert response.output_text == TEXT
    assert provider.bodies[-1]["model"] == MODEL
    record = usage_record(gw, rid)
    assert _billed(record) == WANT
    assert (record["provider"], record["api"]) == ("openai", "responses")
    assert record["cost_usd"] is not None and record["cost_usd"] > 0


def test_a_streamed_responses_call_is_billed_from_response_completed(gw: Proc, provider: ResponsesProvider) -> None:
    rid = new_request_id()
    with _client(gw) as sdk:
        stream = sdk.responses.create(
            model=MODEL, input="What is the capital of France?", stream=True, extra_headers={"x-request-id": rid}
        )
        events = list(stream)
    assert [e.type for e in events][-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == TEXT
    assert provider.bodies[-1]["stream"] is True
    assert _billed(usage_record(gw, rid)) == WANT


def test_the_sdks_stream_helper_assembles_the_answer_and_the_call_is_whole(gw: Proc) -> None:
    rid = new_request_id()
    with _client(gw) as sdk:
        with sdk.responses.stream(
            model=MODEL, input="Capital of France?", extra_headers={"x-request-id": rid}
        ) as stream:
            final = stream.get_final_response()
    assert final.output_text == TEXT
    assert final.usage is not None and final.usage.input_tokens == 1200
    assert _billed(usage_record(gw, rid)) == WANT


# ---- to a provider of another protocol: translated through the pivot ----------------------


@pytest.fixture(scope="module")
def claude_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, FakeProvider]]:
    with FakeProvider() as claude:
        config = f"""
storage: {{database: "sqlite:///./tollway.db"}}
providers: [{{id: claude, type: claude, baseUrl: "{claude.url}", apiTokens: [sk-ant]}}]
routes: [{{name: v1, path_prefix: /v1/, provider: claude}}]
"""
        proc = serve_gateway(tmp_path_factory.mktemp("responses-claude"), config)
        yield proc, claude
        assert proc.stop() == 0


CLAUDE_TEXT = "The capital of France is Paris."  # the fake's transcript answer


def test_a_responses_call_reaches_claude_translated_and_comes_back_as_a_response(
    claude_gw: tuple[Proc, FakeProvider],
) -> None:
    gw, claude = claude_gw
    claude.reset()
    rid = new_request_id()
    with _client(gw) as sdk:
        response = sdk.responses.create(
            model="claude-sonnet-4-5", instructions="Answer briefly.", input="What is the capital of France?",
            max_output_tokens=64, extra_headers={"x-request-id": rid},
        )  # fmt: skip
    assert response.output_text == CLAUDE_TEXT
    assert response.usage is not None and response.usage.input_tokens == 1045  # 21 + 1024 cache reads
    (seen,) = claude.seen
    sent = seen.json()
    assert seen.path == "/v1/messages" and sent["system"] == "Answer briefly." and sent["max_tokens"] == 64
    assert sent["messages"] == [{"role": "user", "content": "What is the capital of France?"}]
    record = usage_record(gw, rid)
    assert (record["status"], record["api"], record["input_tokens"], record["cached_tokens"]) == (
        200,
        "responses",
        1045,
        1024,
    )


def test_a_streamed_responses_call_to_claude_is_the_responses_event_sequence(
    claude_gw: tuple[Proc, FakeProvider],
) -> None:
    gw, _ = claude_gw
    rid = new_request_id()
    with _client(gw) as sdk:
        with sdk.responses.stream(
            model="claude-sonnet-4-5", input="Capital of France?", extra_headers={"x-request-id": rid}
        ) as stream:
            events = list(stream)
            final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert final.output_text == streamed and streamed.startswith("The capital of France is Paris")
    record = usage_record(gw, rid)
    assert (record["status"], record["stream"], record["tokens_estimated"]) == (200, True, False)
    assert record["output_tokens"] > 0


def test_state_a_translated_provider_cannot_keep_is_refused(claude_gw: tuple[Proc, FakeProvider]) -> None:
    gw, claude = claude_gw
    claude.reset()
    with _client(gw) as sdk, pytest.raises(openai.BadRequestError) as caught:
        sdk.responses.create(model="claude-sonnet-4-5", input="and then?", previous_response_id="resp_123")
    assert caught.value.code == "unsupported_parameter" and "previous_response_id" in caught.value.message
    assert claude.seen == []


def test_a_responses_call_reaches_gemini_translated(tmp_path_factory: pytest.TempPathFactory) -> None:
    with FakeProvider() as gemini:
        config = f"""
storage: {{database: "sqlite:///./tollway.db"}}
providers: [{{id: gemini, type: gemini, baseUrl: "{gemini.url}", apiTokens: [g-key]}}]
routes: [{{name: v1, path_prefix: /v1/, provider: gemini}}]
"""
        gw = serve_gateway(tmp_path_factory.mktemp("responses-gemini"), config)
        try:
            rid = new_request_id()
            with _client(gw) as sdk:
                response = sdk.responses.create(
                    model="gemini-2.5-flash", input="Capital of France?", extra_headers={"x-request-id": rid}
                )
            (seen,) = gemini.seen
            assert seen.path.endswith(":generateContent")
            assert response.output_text and response.usage is not None and response.usage.input_tokens > 0
            record = usage_record(gw, rid)
            assert (record["status"], record["provider"], record["api"]) == (200, "gemini", "responses")
        finally:
            assert gw.stop() == 0


class City(pydantic.BaseModel):
    city: str
    country: str


def test_structured_output_and_stored_responses_pass_to_openai_as_they_are(
    gw: Proc, provider: ResponsesProvider
) -> None:
    with _client(gw) as sdk:
        parsed = sdk.responses.parse(model=MODEL, input="Where is the Louvre?", text_format=City, store=True)
    # A stored response is fetched from the route's provider: no model names one.
    with openai.OpenAI(base_url=gw.url + "/direct/v1", api_key="client-key", max_retries=0, timeout=10) as direct:
        fetched = direct.responses.retrieve("resp_1")
    assert parsed.output_parsed == City(city="Paris", country="France")
    sent = provider.bodies[-2]
    assert sent["store"] is True and sent["text"]["format"]["name"] == "City"
    assert provider.paths[-1] == "GET /v1/responses/resp_1" and fetched.id == "resp_1"
