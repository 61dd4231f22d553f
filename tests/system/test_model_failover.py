"""Failover by model (SPEC §9): a provider chosen by ``model_providers`` fails over only to
the other providers whose pattern matches the same model, never to the route's
``providers`` list (which would be sent a model it does not serve); a 429 with no
eligible provider left reaches the client as it came, ``Retry-After`` included; a
request the gateway refuses to translate is the client's error and tries no one else;
a route with ``model_providers`` alone serves the models they match and no other.

Three fakes, so that each provider's faults are its own: ``claude-a`` (Anthropic's
protocol) on ``fa``, ``claude-b`` on ``fb``, the OpenAI provider ``gpt`` on ``fc``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import Proc
from tests.support.fake_provider import FakeProvider, new_request_id, serve_gateway, tried, usage_record

CONFIG = """
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: claude-a, type: claude, baseUrl: "{fa}", apiTokens: [sk-a]}}
  - {{id: claude-b, type: claude, baseUrl: "{fb}", apiTokens: [sk-b]}}
  - {{id: gpt, type: openai, baseUrl: "{fc}/v1", apiTokens: [sk-c]}}
routes:
  - name: mixed
    path_prefix: /mixed/v1/
    providers: [gpt]
    model_providers: {{"claude-*": claude-a}}
  - name: two-claudes
    path_prefix: /two/v1/
    providers: [gpt]
    model_providers: {{"claude-*": claude-a, "claude-3*": claude-b}}
  - name: by-model-only
    path_prefix: /by-model/v1/
    model_providers: {{"claude-*": claude-a}}
"""
MESSAGES: list[Any] = [{"role": "user", "content": "What is the capital of France?"}]
CLAUDE = "claude-3-5-haiku-latest"


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeProvider, FakeProvider, FakeProvider]]:
    with FakeProvider() as fa, FakeProvider() as fb, FakeProvider() as fc:
        yield fa, fb, fc


@pytest.fixture(scope="module")
def gw(
    fakes: tuple[FakeProvider, FakeProvider, FakeProvider], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proc]:
    fa, fb, fc = fakes
    proc = serve_gateway(tmp_path_factory.mktemp("model-failover"), CONFIG.format(fa=fa.url, fb=fb.url, fc=fc.url))
    yield proc
    assert proc.stop() == 0


@pytest.fixture
def fa(fakes: tuple[FakeProvider, FakeProvider, FakeProvider]) -> FakeProvider:
    for fake in fakes:
        fake.reset()
    return fakes[0]


@pytest.fixture
def fb(fakes: tuple[FakeProvider, FakeProvider, FakeProvider], fa: FakeProvider) -> FakeProvider:
    return fakes[1]


@pytest.fixture
def fc(fakes: tuple[FakeProvider, FakeProvider, FakeProvider], fa: FakeProvider) -> FakeProvider:
    return fakes[2]


def _anthropic(gw: Proc, route: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=f"{gw.url}/{route}", api_key="client-key", max_retries=0, timeout=10)


def _openai(gw: Proc, route: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/{route}/v1", api_key="client-key", max_retries=0, timeout=10)


def test_a_claude_429_reaches_the_client_with_retry_after_and_never_the_openai_provider(
    gw: Proc, fa: FakeProvider, fc: FakeProvider
) -> None:
    fa.always(429)
    rid = new_request_id()
    with _anthropic(gw, "mixed") as sdk, pytest.raises(anthropic.RateLimitError) as caught:
        sdk.messages.create(model=CLAUDE, max_tokens=32, messages=MESSAGES, extra_headers={"x-request-id": rid})
    assert caught.value.response.headers["retry-after"] == "7"
    assert fc.seen == []  # the route's providers list serves other models
    assert tried(usage_record(gw, rid)) == [("claude-a", 429)]


def test_a_claude_model_fails_over_to_the_other_provider_whose_pattern_matches_it(
    gw: Proc, fa: FakeProvider, fb: FakeProvider, fc: FakeProvider
) -> None:
    # "claude-3*" (claude-b) is the longer pattern, so it is tried first; "claude-*"
    # (claude-a) matches too and takes over; the providers list (gpt) never does.
    fb.always(503)
    rid = new_request_id()
    with _anthropic(gw, "two") as sdk:
        message = sdk.messages.create(
            model=CLAUDE, max_tokens=32, messages=MESSAGES, extra_headers={"x-request-id": rid}
        )
    assert message.content[0].type == "text"
    assert fc.seen == []
    assert [s.header("x-api-key") for s in fa.seen] == ["sk-a"]
    assert tried(usage_record(gw, rid)) == [("claude-b", 503), ("claude-a", 200)]


def test_a_model_no_pattern_matches_goes_down_the_providers_list(gw: Proc, fa: FakeProvider, fc: FakeProvider) -> None:
    with _openai(gw, "mixed") as sdk:
        reply = sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert reply.choices[0].message.content
    assert fa.seen == [] and len(fc.seen) == 1


def test_a_refused_translation_is_the_clients_error_and_tries_no_other_provider(
    gw: Proc, fa: FakeProvider, fb: FakeProvider, fc: FakeProvider
) -> None:
    # Two choices are something Anthropic's protocol cannot give: refused before any call.
    rid = new_request_id()
    with _openai(gw, "two") as sdk, pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model=CLAUDE, messages=MESSAGES, n=2, extra_headers={"x-request-id": rid})
    assert "n" in caught.value.message
    assert fa.seen == [] and fb.seen == [] and fc.seen == []
    record = usage_record(gw, rid)
    assert record["status"] == 400 and tried(record) == []


def test_a_route_with_model_providers_alone_serves_their_models_and_no_other(gw: Proc, fa: FakeProvider) -> None:
    with _anthropic(gw, "by-model") as sdk:
        assert sdk.messages.create(model=CLAUDE, max_tokens=32, messages=MESSAGES).content
    with _openai(gw, "by-model") as sdk, pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert caught.value.body is not None and "gpt-4o" in caught.value.message
    assert len(fa.seen) == 1


# ---- the models of every provider on the route (SPEC §9) ---------------------------------


def test_the_model_list_holds_every_providers_models_in_the_clients_shape(gw: Proc, fa: FakeProvider) -> None:
    # Route "mixed": gpt (fc) in its providers list, claude-a (fa) only in model_providers.
    with _openai(gw, "mixed") as sdk:
        openai_ids = [m.id for m in sdk.models.list()]
    with _anthropic(gw, "mixed") as sdk:
        page = sdk.models.list()
        anthropic_ids = [m.id for m in page.data]
        assert all(m.type == "model" for m in page.data)
        shown = {m.id: m.display_name for m in page.data}
    # What the provider's own list says of a model stays; a model only a mapping names
    # is shown by its id.
    assert shown["claude-sonnet-4-20250514"] == "Claude Sonnet 4" and shown["gpt-4o"] == "gpt-4o"
    assert "claude-sonnet-4-20250514" in openai_ids and "gpt-4o" in openai_ids  # from each fake's own list
    assert anthropic_ids == openai_ids


def test_model_details_are_asked_of_the_provider_that_serves_the_model(
    gw: Proc, fa: FakeProvider, fc: FakeProvider
) -> None:
    for model in ("claude-3-5-haiku-20241022", "gpt-4o"):
        rid = new_request_id()
        answer = httpx.get(f"{gw.url}/mixed/v1/models/{model}", headers={"x-request-id": rid}, timeout=10)
        assert answer.status_code == 200
        assert answer.json()["id"] == model and answer.json()["object"] == "model"  # OpenAI's shape, either way
        record = usage_record(gw, rid)
        assert (record["api"], record["model_requested"]) == ("models", model)
    assert [s.path for s in fa.seen] == ["/v1/models/claude-3-5-haiku-20241022"]
    assert [s.path for s in fc.seen] == ["/v1/models/gpt-4o"]


# ---- translation never drops a field silently (SPEC §9) ----------------------------------


def test_structured_output_reaches_claude_as_its_own_and_logprobs_are_refused(gw: Proc, fa: FakeProvider) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    response_format: Any = {"type": "json_schema", "json_schema": {"name": "place", "schema": schema}}
    with _openai(gw, "by-model") as sdk:
        sdk.chat.completions.create(model=CLAUDE, messages=MESSAGES, response_format=response_format)
        rid = new_request_id()
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.chat.completions.create(
                model=CLAUDE, messages=MESSAGES, logprobs=True, extra_headers={"x-request-id": rid}
            )
    (seen,) = fa.seen  # the refused call reached no provider
    record = usage_record(gw, rid)  # (and its record names none: a judge found the provider it was being made for)
    assert (record["status"], record["provider"], record["attempts"]) == (400, None, [])
    # Anthropic's structured output as generally available: no beta header needed.
    assert seen.json()["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert seen.all("anthropic-beta") == []
    assert caught.value.code == "unsupported_parameter" and "logprobs" in caught.value.message


def test_anthropic_structured_output_and_effort_reach_an_openai_provider_as_its_own(gw: Proc, fc: FakeProvider) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    output_config: Any = {"format": {"type": "json_schema", "schema": schema}, "effort": "low"}
    with _anthropic(gw, "mixed") as sdk:
        sdk.messages.create(model="gpt-4o", max_tokens=32, messages=MESSAGES, output_config=output_config)
        with pytest.raises(anthropic.BadRequestError) as caught:
            sdk.messages.create(model="gpt-4o", max_tokens=32, messages=MESSAGES, inference_geo="eu")
    (seen,) = fc.seen  # the refused call reached no provider
    sent = seen.json()
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    assert sent["reasoning_effort"] == "low"
    assert "inference_geo" in caught.value.message
