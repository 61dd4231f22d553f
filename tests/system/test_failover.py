"""Failover and retries (SPEC §2 ``providers: [a, b]`` and ``retryOnFailure``, §3 token
rest, §5 ``attempts``) through a real gateway process, against fake providers whose
faults are set on the fake itself: request headers reach every provider of a list alike,
so they cannot fail one provider and spare the next.

Provider ``a`` and the retrying providers live on one fake (``fa``), ``b`` on another
(``fb``); ``dead`` is a port nothing listens on. Each test sets the faults it needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import Proc
from tests.support.fake_provider import (
    FakeProvider,
    closed_port_url,
    new_request_id,
    serve_gateway,
    tried,
    usage_record,
)

CONFIG = """
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: a, type: openai, baseUrl: "{fa}/v1", apiTokens: [sk-a]}}
  - {{id: b, type: openai, baseUrl: "{fb}/v1", apiTokens: [sk-b]}}
  - {{id: dead, type: openai, baseUrl: "{dead}/v1", apiTokens: [sk-dead]}}
  - {{id: a-claude, type: claude, baseUrl: "{fa}", apiTokens: [sk-a-claude]}}
  - id: retrying
    type: openai
    baseUrl: "{fa}/retrying/v1"
    apiTokens: [t1, t2]
    retryOnFailure: {{enabled: true, maxRetries: 1}}
  - id: resting
    type: openai
    baseUrl: "{fa}/resting/v1"
    apiTokens: [k1, k2]
    retryOnFailure: {{enabled: true, maxRetries: 1}}
  - id: retry-then-b
    type: openai
    baseUrl: "{fa}/retry-then-b/v1"
    apiTokens: [u1, u2]
    retryOnFailure: {{enabled: true, maxRetries: 1}}
routes:
  - {{name: ab, path_prefix: /ab/v1/, providers: [a, b]}}
  - {{name: dead-b, path_prefix: /dead-b/v1/, providers: [dead, b]}}
  - {{name: claude-b, path_prefix: /claude-b/v1/, providers: [a-claude, b]}}
  - {{name: solo, path_prefix: /solo/v1/, providers: [a]}}
  - {{name: dead-solo, path_prefix: /dead-solo/v1/, provider: dead}}
  - {{name: retrying, path_prefix: /retrying/v1/, provider: retrying}}
  - {{name: resting, path_prefix: /resting/v1/, provider: resting}}
  - {{name: retry-then-b, path_prefix: /retry-then-b/v1/, providers: [retry-then-b, b]}}
"""
MESSAGES: list[Any] = [{"role": "user", "content": "What is the capital of France?"}]
# What the fakes answer (tests/fixtures/transcripts/openai/chat_text.*).
ANSWER = "The capital of France is Paris."


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeProvider, FakeProvider]]:
    with FakeProvider() as fa, FakeProvider() as fb:
        yield fa, fb


@pytest.fixture(scope="module")
def gw(fakes: tuple[FakeProvider, FakeProvider], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    fa, fb = fakes
    proc = serve_gateway(
        tmp_path_factory.mktemp("failover"), CONFIG.format(fa=fa.url, fb=fb.url, dead=closed_port_url())
    )
    yield proc
    assert proc.stop() == 0


@pytest.fixture
def fa(fakes: tuple[FakeProvider, FakeProvider]) -> FakeProvider:
    fakes[0].reset()
    return fakes[0]


@pytest.fixture
def fb(fakes: tuple[FakeProvider, FakeProvider]) -> FakeProvider:
    fakes[1].reset()
    return fakes[1]


def client(gw: Proc, route: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/{route}/v1", api_key="client-key", max_retries=0, timeout=10)


def anthropic_client(gw: Proc, route: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=f"{gw.url}/{route}", api_key="client-key", max_retries=0, timeout=10)


def ask(gw: Proc, route: str) -> tuple[str, str | None]:
    """One plain chat call on ``route``: (request id, the answer's text)."""
    rid = new_request_id()
    with client(gw, route) as sdk:
        reply = sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={"x-request-id": rid})
    return rid, reply.choices[0].message.content


def bearer(fake: FakeProvider) -> list[str | None]:
    return [seen.header("authorization") for seen in fake.seen]


# ---- failover to the next provider ---------------------------------------------------


def test_a_503_fails_over_to_b_and_the_record_names_both_attempts(gw: Proc, fa: FakeProvider, fb: FakeProvider) -> None:
    fa.always(503)
    rid, text = ask(gw, "ab")
    assert text == ANSWER
    assert bearer(fa) == ["Bearer sk-a"]
    assert bearer(fb) == ["Bearer sk-b"]
    assert fa.seen[0].body == fb.seen[0].body  # b gets the same request a got
    record = usage_record(gw, rid)
    assert (record["status"], record["provider"]) == (200, "b")
    assert tried(record) == [("a", 503), ("b", 200)]
    assert (record["input_tokens"], record["output_tokens"]) == (1117, 8)


def test_a_stream_fails_over_before_its_first_byte(gw: Proc, fa: FakeProvider, fb: FakeProvider) -> None:
    fa.always(503)
    rid = new_request_id()
    with client(gw, "ab") as sdk:
        stream = sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                             extra_headers={"x-request-id": rid})  # fmt: skip
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == ANSWER
    assert len(fa.seen) == 1 and len(fb.seen) == 1
    record = usage_record(gw, rid)
    assert record["stream"] is True
    assert tried(record) == [("a", 503), ("b", 200)]
    assert (record["input_tokens"], record["output_tokens"]) == (1117, 8)


def test_a_connect_error_fails_over_to_b(gw: Proc, fb: FakeProvider) -> None:
    rid, text = ask(gw, "dead-b")
    assert text == ANSWER
    assert len(fb.seen) == 1
    assert tried(usage_record(gw, rid)) == [("dead", 502), ("b", 200)]


def test_a_429_fails_over_to_b(gw: Proc, fa: FakeProvider, fb: FakeProvider) -> None:
    fa.always(429)
    rid, text = ask(gw, "ab")
    assert text == ANSWER
    assert tried(usage_record(gw, rid)) == [("a", 429), ("b", 200)]


def test_an_anthropic_client_fails_over_through_translation(gw: Proc, fa: FakeProvider, fb: FakeProvider) -> None:
    fa.always(503)
    rid = new_request_id()
    with anthropic_client(gw, "ab") as sdk:
        with sdk.messages.stream(model="gpt-4o", max_tokens=64, messages=MESSAGES,
                                 extra_headers={"x-request-id": rid}) as stream:  # fmt: skip
            message = stream.get_final_message()
    assert [b.text for b in message.content if b.type == "text"] == [ANSWER]
    assert fb.seen[0].path == "/v1/chat/completions"
    assert tried(usage_record(gw, rid)) == [("a", 503), ("b", 200)]


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_failover_crosses_protocols(gw: Proc, fa: FakeProvider, fb: FakeProvider, sdk: str) -> None:
    """a speaks Anthropic's protocol, b OpenAI's: whichever the client speaks, one of the
    two calls is translated, and the answer comes back in the client's own shape."""
    fa.always(503)
    if sdk == "openai":
        rid, text = ask(gw, "claude-b")
    else:
        rid = new_request_id()
        with anthropic_client(gw, "claude-b") as sdk_a:
            message = sdk_a.messages.create(model="gpt-4o", max_tokens=64, messages=MESSAGES,
                                            extra_headers={"x-request-id": rid})  # fmt: skip
        text = "".join(b.text for b in message.content if b.type == "text")
    assert text == ANSWER
    assert [(s.path, s.header("x-api-key")) for s in fa.seen] == [("/v1/messages", "sk-a-claude")]
    assert [(s.path, s.header("authorization")) for s in fb.seen] == [("/v1/chat/completions", "Bearer sk-b")]
    assert fb.seen[0].json()["messages"] == MESSAGES
    assert tried(usage_record(gw, rid)) == [("a-claude", 503), ("b", 200)]


def test_a_client_error_is_not_failed_over(gw: Proc, fa: FakeProvider, fb: FakeProvider) -> None:
    fa.always(400)
    rid = new_request_id()
    with client(gw, "ab") as sdk, pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={"x-request-id": rid})
    assert "fake error 400" in caught.value.message
    assert fb.seen == []
    assert tried(usage_record(gw, rid)) == [("a", 400)]


def test_every_provider_failing_answers_with_the_last_ones_error(gw: Proc, fa: FakeProvider, fb: FakeProvider) -> None:
    fa.always(503)
    fb.always(429)
    rid = new_request_id()
    with client(gw, "ab") as sdk, pytest.raises(openai.RateLimitError) as caught:
        sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={"x-request-id": rid})
    assert "fake error 429" in caught.value.message
    record = usage_record(gw, rid)
    assert record["status"] == 429
    assert tried(record) == [("a", 503), ("b", 429)]


# ---- no failover -----------------------------------------------------------------------


def test_a_stream_that_broke_after_it_began_is_not_retried(gw: Proc, fa: FakeProvider, fb: FakeProvider) -> None:
    fa.always("drop")
    rid = new_request_id()
    pieces: list[str] = []
    with client(gw, "ab") as sdk:
        stream = sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True,
                                             extra_headers={"x-request-id": rid})  # fmt: skip
        with pytest.raises(openai.APIError) as caught:
            for chunk in stream:
                pieces.extend(c.delta.content or "" for c in chunk.choices)
    assert "provider 'a'" in caught.value.message
    assert ANSWER not in "".join(pieces)  # the client got the beginning, then the error
    assert len(fa.seen) == 1
    assert fb.seen == []
    record = usage_record(gw, rid)
    assert (record["status"], record["reason"]) == (502, "ai-proxy.bad_upstream_response")
    assert tried(record) == [("a", 200)]


def test_a_whole_answer_cut_mid_body_is_a_502_billed_on_an_estimate(gw: Proc, fa: FakeProvider) -> None:
    """The provider answered 200 and bills the call; its body broke off half-way."""
    fa.always("drop")
    rid = new_request_id()
    with client(gw, "solo") as sdk, pytest.raises(openai.InternalServerError):
        sdk.with_options(max_retries=0).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers={"x-request-id": rid}
        )
    record = usage_record(gw, rid)
    assert (record["status"], record["reason"]) == (502, "ai-proxy.bad_upstream_response")
    assert record["tokens_estimated"] is True and record["input_tokens"] > 0


def test_one_provider_is_never_failed_over_its_error_reaches_the_client(gw: Proc, fa: FakeProvider) -> None:
    fa.always(503)
    rid = new_request_id()
    with client(gw, "solo") as sdk, pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={"x-request-id": rid})
    assert caught.value.status_code == 503
    assert "fake error 503" in caught.value.message
    assert len(fa.seen) == 1
    assert tried(usage_record(gw, rid)) == [("a", 503)]


def test_one_unreachable_provider_is_a_502(gw: Proc) -> None:
    rid = new_request_id()
    with client(gw, "dead-solo") as sdk, pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={"x-request-id": rid})
    assert caught.value.status_code == 502
    assert caught.value.response.headers["x-tollway-reason"] == "ai-proxy.upstream_unreachable"
    assert "provider 'dead' is unreachable" in caught.value.message
    assert tried(usage_record(gw, rid)) == [("dead", 502)]


# ---- retryOnFailure --------------------------------------------------------------------


def test_retry_goes_to_the_same_provider_with_its_other_token(gw: Proc, fa: FakeProvider) -> None:
    fa.next_answers(503)  # only the first request fails
    rid, text = ask(gw, "retrying")
    assert text == ANSWER
    assert bearer(fa) == ["Bearer t1", "Bearer t2"]
    assert [s.path for s in fa.seen] == ["/retrying/v1/chat/completions"] * 2
    record = usage_record(gw, rid)
    assert (record["status"], record["provider"]) == (200, "retrying")
    assert tried(record) == [("retrying", 503), ("retrying", 200)]


def test_a_token_answering_401_rests(gw: Proc, fa: FakeProvider) -> None:
    fa.refuse_key("k1", 401)
    first, text = ask(gw, "resting")
    assert text == ANSWER
    assert tried(usage_record(gw, first)) == [("resting", 401), ("resting", 200)]
    later = [ask(gw, "resting")[0] for _ in range(3)]
    # Tokens are used in turn, but k1 rests after its 401: every later call uses k2.
    assert bearer(fa) == ["Bearer k1", "Bearer k2", "Bearer k2", "Bearer k2", "Bearer k2"]
    assert [tried(usage_record(gw, rid)) for rid in later] == [[("resting", 200)]] * 3


def test_retries_run_out_before_failing_over(gw: Proc, fa: FakeProvider, fb: FakeProvider) -> None:
    fa.always(503)
    rid, text = ask(gw, "retry-then-b")
    assert text == ANSWER
    assert bearer(fa) == ["Bearer u1", "Bearer u2"]
    assert bearer(fb) == ["Bearer sk-b"]
    assert tried(usage_record(gw, rid)) == [("retry-then-b", 503), ("retry-then-b", 503), ("b", 200)]
