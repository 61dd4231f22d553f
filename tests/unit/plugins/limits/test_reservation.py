"""The reservation ai-token-ratelimit and ai-quota share (plugins/limits/reservation.py):
the estimate taken before a call, and what a finished call spent."""

from __future__ import annotations

import orjson
import pytest

from tests.support.plugin_support import call, chat_body, served
from tollway.config.schema import CustomSetting
from tollway.plugin import UpstreamCall
from tollway.plugins.limits.reservation import estimate, spent


def test_the_estimate_is_a_quarter_of_the_body_bytes_plus_the_output_limit() -> None:
    body = chat_body(max_tokens=100)
    assert estimate(call(body=body), 256) == (len(body) + 3) // 4 + 100


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens", "max_output_tokens"])
def test_every_name_of_the_output_limit_counts(field: str) -> None:
    body = orjson.dumps({"model": "m", field: 40})
    assert estimate(call(body=body), 256) == (len(body) + 3) // 4 + 40


def test_a_body_that_names_two_output_limits_reserves_the_larger() -> None:
    # Which one a provider obeys is its own: translated to Anthropic, and on vLLM,
    # max_completion_tokens wins. Reserving the smaller let calls past a budget 5x over.
    for limits in ({"max_tokens": 1, "max_completion_tokens": 500}, {"max_completion_tokens": 500, "max_tokens": 1}):
        body = orjson.dumps({"model": "m", **limits})
        assert estimate(call(body=body), 256) == (len(body) + 3) // 4 + 500


def test_a_legacy_completion_with_best_of_reserves_every_answer_generated() -> None:
    # best_of answers are generated (and billed), n of them returned.
    body = orjson.dumps({"model": "m", "prompt": "p", "max_tokens": 100, "best_of": 5, "n": 2})
    assert estimate(call(body=body, path="/v1/completions"), 256) == (len(body) + 3) // 4 + 500


@pytest.mark.parametrize(
    ("prompt", "answers"),
    [("p", 1), (["a", "b", "c"], 3), ([[1, 2], [3], [4]], 3), ([1, 2, 3], 1), ([], 1)],
)
def test_a_legacy_completion_reserves_an_answer_per_prompt_of_a_list(prompt: object, answers: int) -> None:
    # A list of 200 prompts is answered 200 times, max_tokens each: reserving one answer
    # let a single call put a quota 4,100 tokens under zero (a judge's High). One list of
    # token ids is one prompt.
    body = orjson.dumps({"model": "m", "prompt": prompt, "max_tokens": 50, "n": 2})
    assert estimate(call(body=body, path="/v1/completions"), 256) == (len(body) + 3) // 4 + 100 * answers


def test_a_providers_custom_settings_that_raise_the_output_limit_are_reserved() -> None:
    # customSettings overwrite the client's max_tokens (or set n) on the way out: the
    # provider is sent 3,000, so 3,000 may be generated (a judge's Medium: 5 were held
    # and 2,500 billed). Settings that lower it, or keep the client's, leave the client's.
    body = orjson.dumps({"model": "m", "max_tokens": 5})
    prompt = (len(body) + 3) // 4

    def held(*settings: dict[str, object]) -> int:
        calls = [UpstreamCall("m", (CustomSetting.model_validate(s),)) for s in settings]
        return estimate(call(body=body), 256, calls)

    assert held() == prompt + 5
    assert held({"name": "max_tokens", "value": 3000}) == prompt + 3000
    assert held({"name": "max_tokens", "value": 3000, "overwrite": False}) == prompt + 5
    assert held({"name": "max_tokens", "value": 2}) == prompt + 5
    assert held({"name": "n", "value": 4}, {"name": "max_completion_tokens", "value": 50}) == prompt + 50
    assert held({"name": "n", "value": 4}) == prompt + 20


def test_geminis_own_api_names_its_output_limit_and_answers_in_its_generation_config() -> None:
    body = orjson.dumps({"contents": [], "generationConfig": {"maxOutputTokens": 70, "candidateCount": 3}})
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    assert estimate(call(body=body, path=path), 256) == (len(body) + 3) // 4 + 210


def test_without_an_output_limit_the_configured_default_is_reserved_times_n() -> None:
    body = orjson.dumps({"model": "m", "n": 3})
    assert estimate(call(body=body), 50) == (len(body) + 3) // 4 + 150


def test_embeddings_reserve_no_output_and_a_broken_body_still_reserves_something() -> None:
    body = orjson.dumps({"model": "e", "input": "hello"})
    assert estimate(call(body=body, path="/v1/embeddings"), 256) == (len(body) + 3) // 4
    assert estimate(call(body=b"{oops"), 10) == 2 + 10
    assert estimate(call(body=b""), 0) == 1


def test_spent_is_the_reported_usage_or_what_can_be_known() -> None:
    assert spent(served(call(), 7, 30), 500) == 37
    estimated = call()
    estimated.usage.input_tokens, estimated.usage.output_tokens, estimated.usage.estimated = 5, 9, True
    estimated.status = 502
    assert spent(estimated, 500) == 14
    abandoned = call()
    abandoned.provider, abandoned.status = "p", 499
    assert spent(abandoned, 500) == 500  # the provider may have billed it: the estimate stands
    never_sent = call()
    never_sent.status = 499
    assert spent(never_sent, 500) == 0
    refused_upstream = call()
    refused_upstream.provider, refused_upstream.status = "p", 429
    assert spent(refused_upstream, 500) == 0
