"""What media and moderation calls cost, against a fake of OpenAI's media APIs with the
OpenAI SDK as the client (SPEC §9, §10). Models billed per character (speech), minute of
audio (Whisper) or image (DALL·E) answer no token usage: their records' cost is unknown
(null), never $0, and a budget refuses them, whatever price per token ``pricing:`` gives.
Media models billed per token report their usage and are billed it. Moderation is free
whatever model it names, so a budget lets it pass."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Literal

import httpx
import openai
import pytest

from tests.conftest import GatewayFactory, Proc
from tests.support.fake_provider import new_request_id, usage_record
from tests.support.media_provider import IMAGE_USAGE, SPEECH_USAGE, TRANSCRIPTION_USAGE, MediaProvider

# Prices per million tokens: the per-unit models' are what a user following the old
# "give the model a price" advice wrote (they never apply: no call reports tokens).
PRICES = {
    "tts-1": (15, 0),
    "whisper-1": (6, 0),
    "dall-e-3": (40, 40),
    "gpt-4o-mini-tts": (0.6, 12),
    "gpt-4o-transcribe": (2.5, 10),
    "gpt-image-1": (5, 40),
    # Custom names (an Azure deployment's, a provider's alias) of models billed per unit,
    # which the table cannot tell by their name.
    "my-whisper": (6, 0),
    "my-dall-e": (40, 40),
    "my-tts": (15, 0),
}
PRICING = ", ".join(f"{m}: {{input_per_mtok: {i}, output_per_mtok: {o}}}" for m, (i, o) in PRICES.items())


def config(media: MediaProvider) -> str:
    return f"""
storage: {{database: "sqlite:///./tollway.db"}}
pricing: {{{PRICING}}}
providers: [{{id: openai, type: openai, baseUrl: "{media.url}/v1", apiTokens: [sk-openai]}}]
routes: [{{name: v1, path_prefix: /v1/, provider: openai}}]
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      consumers:
        - {{name: alice, credential: key-alice, budget: {{usd: 5, period: day}}}}
        - {{name: frank, credential: key-frank}}
"""


@pytest.fixture(scope="module")
def media() -> Iterator[MediaProvider]:
    with MediaProvider() as fake:
        yield fake


@pytest.fixture
def gw(gateway: GatewayFactory, media: MediaProvider) -> Proc:
    return gateway(config(media))


def test_moderation_naming_a_model_passes_a_budget(gw: Proc, media: MediaProvider) -> None:
    rid = new_request_id()
    r = httpx.post(
        gw.url + "/v1/moderations",
        json={"model": "omni-moderation-latest", "input": "hi"},
        headers={"authorization": "Bearer key-alice", "x-request-id": rid},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    assert media.paths[-1] == "/v1/moderations"
    record = usage_record(gw, rid)
    want = ("moderations", "omni-moderation-latest", 200)
    assert (record["api"], record["model_requested"], record["status"]) == want
    # Free, not unpriced: no warning telling the operator to price it (verifier).
    assert record["cost_usd"] == 0.0
    gw.stop()
    assert not any("has no price" in line for line in gw.stderr_lines), gw.stderr_lines


Call = Callable[[openai.OpenAI, str], object]


def speech(model: str, sse: bool = False) -> Call:
    def call(sdk: openai.OpenAI, rid: str) -> object:
        headers = {"x-request-id": rid}
        if sse:  # (the speech itself in events, then its usage)
            return sdk.audio.speech.create(
                model=model, voice="alloy", input="Hello there", stream_format="sse", extra_headers=headers
            ).read()
        return sdk.audio.speech.create(model=model, voice="alloy", input="Hello there", extra_headers=headers).read()

    return call


def _clip() -> io.BytesIO:
    audio = io.BytesIO(b"RIFF" + b"\0" * 2048)
    audio.name = "clip.wav"
    return audio


def transcription(model: str, response_format: Literal["json", "text"] = "json") -> Call:
    def call(sdk: openai.OpenAI, rid: str) -> object:
        return sdk.audio.transcriptions.create(
            model=model, file=_clip(), response_format=response_format, extra_headers={"x-request-id": rid}
        )

    return call


def image(model: str) -> Call:
    def call(sdk: openai.OpenAI, rid: str) -> object:
        return sdk.images.generate(model=model, prompt="a lighthouse", extra_headers={"x-request-id": rid})

    return call


PER_UNIT = [
    ("tts-1", "audio", "character", speech("tts-1")),
    ("whisper-1", "audio", "minute of audio", transcription("whisper-1")),
    ("dall-e-3", "images", "image", image("dall-e-3")),
]


def sdk_of(gw: Proc, who: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=f"key-{who}", max_retries=0, timeout=10)


def test_a_call_billed_per_unit_is_recorded_with_an_unknown_cost(gw: Proc) -> None:
    with sdk_of(gw, "frank") as sdk:  # no budget
        for model, api, unit, call in PER_UNIT:
            rid = new_request_id()
            call(sdk, rid)
            record = usage_record(gw, rid)
            assert (record["api"], record["model_upstream"], record["status"]) == (api, model, 200)
            assert (record["input_tokens"], record["output_tokens"], record["tokens_estimated"]) == (0, 0, False)
            assert record["cost_usd"] is None  # unknown, not $0: its answer said nothing of it
            said = gw.logged(f"model {model!r} has no price per token")
            assert len(said) == 1 and f"billed per {unit}" in said[0], said


def test_a_budget_refuses_a_call_billed_per_unit(gw: Proc, media: MediaProvider) -> None:
    before = len(media.paths)
    with sdk_of(gw, "alice") as sdk:
        for model, _, unit, call in PER_UNIT:
            rid = new_request_id()
            with pytest.raises(openai.PermissionDeniedError) as refused:
                call(sdk, rid)
            assert refused.value.code == "model_unpriced"
            assert refused.value.response.headers["x-tollway-reason"] == "budget.unpriced_model"
            assert f"model {model!r} is billed per {unit}" in refused.value.message
            assert "consumer 'alice' has a budget" in refused.value.message
        # Speech from a model billed per token, answered as the audio itself: no usage.
        with pytest.raises(openai.PermissionDeniedError) as refused:
            speech("gpt-4o-mini-tts")(sdk, new_request_id())
        assert refused.value.code == "model_unpriced" and "stream_format" in refused.value.message
    assert len(media.paths) == before  # no provider was called
    spend = httpx.get(gw.admin_url + "/api/consumers/alice").json()["spend"]
    assert [e["spend_usd"] for e in spend] == [0]


# Calls whose answers may report no token usage, whatever their model's name or price:
# the name is no guide (a custom one, an alias), the API and the answer's format are.
UNREPORTED = [
    ("my-whisper", transcription("my-whisper"), "not known to answer /audio/transcriptions with its token usage"),
    ("my-dall-e", image("my-dall-e"), "not known to answer /images/generations with its token usage"),
    ("gpt-4o-transcribe", transcription("gpt-4o-transcribe", "text"), "answered as text, srt or vtt"),
    ("my-tts", speech("my-tts"), "speech answered as audio reports no token usage"),
]


def test_media_calls_whose_answers_report_no_tokens_are_refused_to_a_budget(gw: Proc, media: MediaProvider) -> None:
    # Without a budget they are answered with no token usage and recorded at an unknown
    # cost, though their names have a price per token: a budget could not count them.
    with sdk_of(gw, "frank") as sdk:
        for model, call, _ in UNREPORTED[:2]:
            rid = new_request_id()
            call(sdk, rid)
            record = usage_record(gw, rid)
            assert (record["model_upstream"], record["status"], record["cost_usd"]) == (model, 200, None)
    before = len(media.paths)
    with sdk_of(gw, "alice") as sdk:
        for model, call, why in UNREPORTED:
            with pytest.raises(openai.PermissionDeniedError) as refused:
                call(sdk, new_request_id())
            assert refused.value.code == "model_unpriced", model
            assert refused.value.response.headers["x-tollway-reason"] == "budget.unpriced_model"
            assert why in refused.value.message and "consumer 'alice' has a budget" in refused.value.message
    # Translations (Whisper's only) never report tokens. (The SDK's call is deprecated.)
    r = httpx.post(
        gw.url + "/v1/audio/translations",
        data={"model": "my-whisper"},
        files={"file": ("clip.wav", b"RIFF" + b"\0" * 2048)},
        headers={"authorization": "Bearer key-alice"},
        timeout=10,
    )
    assert (r.status_code, r.json()["error"]["code"]) == (403, "model_unpriced")
    assert "POST /audio/translations is answered without token usage" in r.json()["error"]["message"]
    assert len(media.paths) == before  # no provider was called
    spend = httpx.get(gw.admin_url + "/api/consumers/alice").json()["spend"]
    assert [e["spend_usd"] for e in spend] == [0]


def test_media_models_billed_per_token_are_billed_what_they_report(gw: Proc) -> None:
    calls = [
        ("gpt-4o-mini-tts", speech("gpt-4o-mini-tts", sse=True), SPEECH_USAGE),
        ("gpt-4o-transcribe", transcription("gpt-4o-transcribe"), TRANSCRIPTION_USAGE),
        ("gpt-image-1", image("gpt-image-1"), IMAGE_USAGE),
    ]
    total = 0.0
    with sdk_of(gw, "alice") as sdk:  # with a budget
        for model, call, usage in calls:
            rid = new_request_id()
            call(sdk, rid)
            record = usage_record(gw, rid)
            assert (record["model_upstream"], record["status"], record["tokens_estimated"]) == (model, 200, False)
            assert (record["input_tokens"], record["output_tokens"]) == (usage["input_tokens"], usage["output_tokens"])
            inp, out = PRICES[model]
            cost = (usage["input_tokens"] * inp + usage["output_tokens"] * out) / 1_000_000
            assert record["cost_usd"] == pytest.approx(cost, rel=1e-9)
            total += cost
    spend = httpx.get(gw.admin_url + "/api/consumers/alice").json()["spend"]
    assert [e["spend_usd"] for e in spend] == [pytest.approx(total, rel=1e-9)]
