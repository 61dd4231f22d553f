"""ai-data-masking through a real gateway, the mock model and the official SDKs: the
provider sees placeholders and never the e-mail or card; the client gets the originals
back, in whole answers and in streams (a placeholder split across events included);
the model name and parameters leave untouched; a deny word or ``mode: deny`` answers
with the refusal and sends nothing.

The mock echoes the start of the last user message by default and answers exactly
``x-mock-reply`` when asked, so the placeholders the gateway issues ([EMAIL_1], [CARD_1]:
numbered per kind, in order of appearance) can be put into the model's answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
import pytest

from tests.conftest import Proc, start_process
from tollway.mockllm.replies import split_chunks

CONFIG = """
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: mock, type: openai, baseUrl: "{mock}/v1", apiTokens: [sk-provider]}}
routes:
  - {{name: main, path_prefix: /v1/, provider: mock}}
  - {{name: strict, path_prefix: /strict/v1/, provider: mock}}
plugins:
  - name: ai-data-masking
    defaultConfig:
      deny_words: ["project falcon"]
      deny_message: "That topic is off limits."
    matchRules:
      - ingress: [strict]
        config: {{mode: deny}}
"""
EMAIL = "bob.smith@example.com"
CARD = "4111 1111 1111 1111"
PROMPT = f"Please email {EMAIL} the receipt for card {CARD}."
MASKED = "Please email [EMAIL_1] the receipt for card [CARD_1]."
REPLY = "Done: the receipt for [CARD_1] went to [EMAIL_1]."
RESTORED = f"Done: the receipt for {CARD} went to {EMAIL}."
Requests = Callable[[], list[dict[str, Any]]]


@pytest.fixture(scope="module")
def gw(mock_llm: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    folder: Path = tmp_path_factory.mktemp("data-masking")
    (folder / "tollway.yaml").write_text(CONFIG.format(mock=mock_llm.url))
    proc = start_process(["serve", "-c", "tollway.yaml", "--port", "0", "--admin-port", "0"], cwd=folder)
    yield proc
    assert proc.stop() == 0


@pytest.fixture
def sdk(gw: Proc) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=10) as client:
        yield client


def upstream_bodies(mock_requests: Requests) -> list[dict[str, Any]]:
    return [orjson.loads(r["body"]) for r in mock_requests() if r["path"] == "/v1/chat/completions"]


def assert_masked_upstream(mock_requests: Requests) -> dict[str, Any]:
    """The one body the provider got: placeholders in, originals nowhere."""
    seen = mock_requests()
    assert len(seen) == 1
    raw = seen[0]["body"]
    assert EMAIL not in raw and "4111" not in raw and "bob.smith" not in raw
    body: dict[str, Any] = orjson.loads(raw)
    assert body["messages"][-1]["content"] == MASKED
    return body


def test_plain_answer_gets_the_originals_back(sdk: openai.OpenAI, mock_requests: Requests) -> None:
    answer = sdk.chat.completions.create(
        model="mock-gpt",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}],
        temperature=0.3,
        max_tokens=50,
        extra_headers={"x-mock-reply": REPLY},
    )
    assert answer.choices[0].message.content == RESTORED
    body = assert_masked_upstream(mock_requests)
    assert body["model"] == "mock-gpt" and body["temperature"] == 0.3 and body["max_tokens"] == 50
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_the_mocks_own_echo_comes_back_unmasked(sdk: openai.OpenAI, mock_requests: Requests) -> None:
    # The mock answers "This is a mock reply to: <first 40 characters it saw>".
    answer = sdk.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": f"{EMAIL} {CARD}"}])
    assert answer.choices[0].message.content == f"This is a mock reply to: {EMAIL} {CARD}"
    assert orjson.loads(mock_requests()[0]["body"])["messages"][0]["content"] == "[EMAIL_1] [CARD_1]"


def chunks_splitting(text: str, placeholder: str) -> int:
    """A chunk count for which the mock cuts ``placeholder`` between two events."""
    start = text.index(placeholder)
    for n in range(2, 40):
        cuts = [len("".join(split_chunks(text, n)[:k])) for k in range(1, n)]
        if any(start < cut < start + len(placeholder) for cut in cuts):
            return n
    raise AssertionError("no chunk count splits the placeholder")


@pytest.mark.parametrize("pieces", ["two", "every-character"])
def test_stream_restores_placeholders_split_across_events(
    sdk: openai.OpenAI, mock_requests: Requests, pieces: str
) -> None:
    n = chunks_splitting(REPLY, "[EMAIL_1]") if pieces == "two" else len(REPLY)
    stream = sdk.chat.completions.create(
        model="mock-gpt",
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        extra_headers={"x-mock-reply": REPLY, "x-mock-chunks": str(n)},
    )
    deltas = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert "".join(deltas) == RESTORED
    assert not any("[" in d or "]" in d for d in deltas), f"a piece of a placeholder reached the client: {deltas}"
    assert len(deltas) >= 2
    body = assert_masked_upstream(mock_requests)
    assert body["stream"] is True and body["model"] == "mock-gpt"


def test_stream_that_ends_inside_a_placeholder_prefix(sdk: openai.OpenAI, mock_requests: Requests) -> None:
    reply = "Sent to [EMAIL_1] [EMA"  # the model stops mid-token: the client gets the tail as is
    stream = sdk.chat.completions.create(
        model="mock-gpt",
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        extra_headers={"x-mock-reply": reply, "x-mock-chunks": str(len(reply))},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == f"Sent to {EMAIL} [EMA"


def test_deny_word_answers_with_the_refusal_and_sends_nothing(sdk: openai.OpenAI, mock_requests: Requests) -> None:
    raw = sdk.chat.completions.with_raw_response.create(
        model="mock-gpt", messages=[{"role": "user", "content": "Status of Project Falcon?"}]
    )
    assert raw.status_code == 200
    assert raw.headers["x-tollway-reason"] == "ai-data-masking.denied"
    answer = raw.parse()
    assert answer.choices[0].message.content == "That topic is off limits."
    assert answer.model == "mock-gpt"
    assert mock_requests() == []


def test_deny_in_a_stream(sdk: openai.OpenAI, mock_requests: Requests) -> None:
    stream = sdk.chat.completions.create(
        model="mock-gpt", messages=[{"role": "user", "content": "project falcon"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "That topic is off limits."
    assert mock_requests() == []


def test_mode_deny_refuses_what_a_detector_finds(gw: Proc, mock_requests: Requests) -> None:
    with openai.OpenAI(base_url=gw.url + "/strict/v1", api_key="unused", max_retries=0, timeout=10) as strict:
        refused = strict.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": PROMPT}])
        assert refused.choices[0].message.content == "That topic is off limits."
        assert mock_requests() == []
        clean = strict.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "hello"}])
        assert clean.choices[0].message.content == "This is a mock reply to: hello"
    gw.wait_for_stdout(lambda lines: any('"strict"' in line and "ai-data-masking.denied" in line for line in lines))
    records = [r for r in gw.access_log() if r.get("reason") == "ai-data-masking.denied" and r["route"] == "strict"]
    assert records[-1]["status"] == 200


def test_anthropic_messages_stream(gw: Proc, mock_requests: Requests) -> None:
    with anthropic.Anthropic(base_url=gw.url, api_key="unused", max_retries=0, timeout=10) as client:
        n = chunks_splitting(REPLY, "[CARD_1]")
        with client.messages.stream(
            model="mock-claude",
            max_tokens=100,
            system=f"The customer is {EMAIL}.",
            messages=[{"role": "user", "content": [{"type": "text", "text": f"Refund card {CARD}."}]}],
            extra_headers={"x-mock-reply": REPLY, "x-mock-chunks": str(n)},
        ) as stream:
            text = "".join(stream.text_stream)
    assert text == RESTORED
    seen = mock_requests()
    # The OpenAI-style provider gets the masked call translated to chat completions.
    assert len(seen) == 1 and seen[0]["path"] == "/v1/chat/completions"
    body = orjson.loads(seen[0]["body"])
    system, user = body["messages"]
    assert system["role"] == "system" and "The customer is [EMAIL_1]." in str(system["content"])
    assert user["role"] == "user" and "Refund card [CARD_1]." in str(user["content"])
    assert EMAIL not in seen[0]["body"] and "4111" not in seen[0]["body"]
