"""What a thinking model signs survives a translated tool-call round trip, through a real
gateway process with the official SDKs as clients and the transcript fake as provider:

- Claude's signed thinking (``messages_thinking``: a thinking block with its signature,
  a redacted one, a tool call) reaches an OpenAI chat client as ``thinking_blocks`` and
  a Responses client as a reasoning item's ``encrypted_content``; sent back, Claude gets
  the blocks exactly, first in the assistant turn, as it requires after a tool call;
- Gemini's thought signature (``generate_tools``) reaches an Anthropic Messages client
  and a Responses client in the tool call's id; sent back, Gemini gets the
  ``functionCall`` with its ``thoughtSignature`` and the result under the call's own id.

Turn 1 gets the answer, turn 2 sends it back as the client got it (plain and streamed),
and the request the provider received is checked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import Proc
from tests.support.fake_provider import FakeProvider, serve_gateway
from tests.support.transcript_support import TRANSCRIPTS

KEY = "ck-signatures-3e7a"
CONFIG = """
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: claude, type: claude, baseUrl: "{fake}", apiTokens: [sk-ant]}}
  - {{id: gemini, type: gemini, baseUrl: "{fake}", apiTokens: [g-key]}}
routes:
  - {{name: claude, path_prefix: /claude/v1/, provider: claude}}
  - {{name: gemini, path_prefix: /gemini/v1/, provider: gemini}}
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization, x-api-key]
      consumers: [{{name: app, credential: {key}}}]
"""
WEATHER = {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}
ASK = "What is the weather in Paris tomorrow?"
RESULT = '{"celsius": 18}'
CHAT_TOOLS: list[Any] = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
RESPONSES_TOOLS: list[Any] = [{"type": "function", "name": "get_weather", "parameters": WEATHER}]
ANTHROPIC_TOOLS: list[Any] = [{"name": "get_weather", "input_schema": WEATHER}]


def _transcript_blocks(stream: bool) -> list[dict[str, Any]]:
    """The thinking blocks of the Claude transcript the fake answers with."""
    if not stream:
        content = json.loads((TRANSCRIPTS / "anthropic" / "messages_thinking.response.json").read_text())["content"]
        return [b for b in content if b["type"] in ("thinking", "redacted_thinking")]
    thinking = {"type": "thinking", "thinking": "", "signature": ""}
    blocks: list[dict[str, Any]] = [thinking]
    for line in (TRANSCRIPTS / "anthropic" / "messages_thinking.stream.sse").read_text().splitlines():
        event = json.loads(line[6:]) if line.startswith("data: ") else {}
        delta = event.get("delta") or {}
        if delta.get("type") == "thinking_delta":
            thinking["thinking"] += delta["thinking"]
        elif delta.get("type") == "signature_delta":
            thinking["signature"] += delta["signature"]
        elif (event.get("content_block") or {}).get("type") == "redacted_thinking":
            blocks.append(event["content_block"])
    return blocks


# What Gemini's transcripts sign: the first function call of each answer.
GEMINI_SIGNATURE = {False: "CiQB0e2Kb9a1QmVx", True: "CiQB0e2Kb6c4ZlRm"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, FakeProvider]]:
    """The gateway, and the fake that is both its providers."""
    with FakeProvider() as provider:
        proc = serve_gateway(tmp_path_factory.mktemp("signatures"), CONFIG.format(fake=provider.url, key=KEY))
        yield proc, provider
        assert proc.stop() == 0


@pytest.fixture
def gw(served: tuple[Proc, FakeProvider]) -> Proc:
    return served[0]


@pytest.fixture
def fake(served: tuple[Proc, FakeProvider]) -> FakeProvider:
    served[1].reset()
    return served[1]


def openai_sdk(gw: Proc, provider: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/{provider}/v1", api_key=KEY, max_retries=0, timeout=10)


def anthropic_sdk(gw: Proc) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=f"{gw.url}/gemini", api_key=KEY, max_retries=0, timeout=10)


def second_request(fake: FakeProvider) -> dict[str, Any]:
    _first, second = fake.seen
    body: dict[str, Any] = second.json()
    return body


def assert_claude_got_its_thinking_back(fake: FakeProvider, stream: bool) -> None:
    assistant = second_request(fake)["messages"][1]
    assert assistant["role"] == "assistant"
    blocks = _transcript_blocks(stream)
    assert assistant["content"][: len(blocks)] == blocks
    assert [b["type"] for b in assistant["content"][len(blocks) :]][-1] == "tool_use"


def assert_gemini_got_its_signature_back(fake: FakeProvider, stream: bool) -> None:
    model_turn, results = second_request(fake)["contents"][1:]
    first_call = model_turn["parts"][0] if not stream else next(p for p in model_turn["parts"] if "functionCall" in p)
    assert first_call["thoughtSignature"] == GEMINI_SIGNATURE[stream]
    call_id = first_call["functionCall"]["id"]
    assert "__tsig_" not in call_id
    # The result names the call by the call's own id: they still match.
    assert results["parts"][0]["functionResponse"]["id"] == call_id


# ---- Claude's thinking ------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_an_openai_chat_client_sends_claudes_thinking_blocks_back(gw: Proc, fake: FakeProvider, stream: bool) -> None:
    messages: list[Any] = [{"role": "user", "content": ASK}]
    with openai_sdk(gw, "claude") as client:
        fields: dict[str, Any] = {"model": "claude-sonnet-4-5", "messages": messages, "tools": CHAT_TOOLS,
                                  "reasoning_effort": "low"}  # fmt: skip
        if stream:
            chunks = list(client.chat.completions.create(**fields, stream=True))
            deltas = [c.choices[0].delta for c in chunks if c.choices]
            blocks = [b for d in deltas for b in (d.model_extra or {}).get("thinking_blocks") or ()]
            reasoning = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
            call = next(t for d in deltas for t in d.tool_calls or ())
            call_id, arguments = call.id, '{"location": "Paris, France"}'
        else:
            message = client.chat.completions.create(**fields).choices[0].message
            blocks = (message.model_extra or {})["thinking_blocks"]
            reasoning = (message.model_extra or {})["reasoning_content"]
            [tool_call] = message.tool_calls or []
            assert tool_call.type == "function"
            call_id, arguments = tool_call.id, tool_call.function.arguments
        assert blocks == _transcript_blocks(stream)
        assert reasoning == blocks[0]["thinking"]  # the text still comes as reasoning_content
        turn: dict[str, Any] = {
            "role": "assistant", "content": None, "thinking_blocks": blocks,
            "tool_calls": [{"id": call_id, "type": "function",
                            "function": {"name": "get_weather", "arguments": arguments}}],
        }  # fmt: skip
        messages += [turn, {"role": "tool", "tool_call_id": call_id, "content": RESULT}]
        client.chat.completions.create(**fields)
    assert_claude_got_its_thinking_back(fake, stream)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_responses_client_sends_claudes_thinking_back_in_its_reasoning_item(
    gw: Proc, fake: FakeProvider, stream: bool
) -> None:
    with openai_sdk(gw, "claude") as client:
        fields: dict[str, Any] = {"model": "claude-sonnet-4-5", "tools": RESPONSES_TOOLS,
                                  "reasoning": {"effort": "low"}, "store": False,
                                  "include": ["reasoning.encrypted_content"]}  # fmt: skip
        if stream:
            events = list(client.responses.create(input=ASK, stream=True, **fields))
            completed = events[-1]
            assert completed.type == "response.completed"
            output = completed.response.output
        else:
            output = client.responses.create(input=ASK, **fields).output
        reasoning = output[0]
        assert reasoning.type == "reasoning" and reasoning.encrypted_content
        [call] = [item for item in output if item.type == "function_call"]
        items: list[Any] = [
            {"role": "user", "content": ASK},
            *[item.model_dump(exclude_none=True) for item in output],
            {"type": "function_call_output", "call_id": call.call_id, "output": RESULT},
        ]
        client.responses.create(input=items, **fields)
    assert_claude_got_its_thinking_back(fake, stream)
    assert second_request(fake)["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": call.call_id,
        "content": RESULT,
    }


# ---- Gemini's thought signatures --------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_an_anthropic_client_sends_geminis_thought_signature_back_in_the_tool_use_id(
    gw: Proc, fake: FakeProvider, stream: bool
) -> None:
    messages: list[Any] = [{"role": "user", "content": ASK}]
    fields: dict[str, Any] = {"model": "gemini-3-pro-preview", "max_tokens": 256, "tools": ANTHROPIC_TOOLS}
    with anthropic_sdk(gw) as client:
        if stream:
            with client.messages.stream(messages=messages, **fields) as events:
                answer = events.get_final_message()
        else:
            answer = client.messages.create(messages=messages, **fields)
        calls = [b for b in answer.content if b.type == "tool_use"]
        assert calls and all(c.id.replace("_", "").replace("-", "").isalnum() for c in calls)
        results = [{"type": "tool_result", "tool_use_id": c.id, "content": RESULT} for c in calls]
        messages += [
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in answer.content]},
            {"role": "user", "content": results},
        ]
        client.messages.create(messages=messages, **fields)
    assert_gemini_got_its_signature_back(fake, stream)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_responses_client_sends_geminis_thought_signature_back_in_the_call_id(
    gw: Proc, fake: FakeProvider, stream: bool
) -> None:
    fields: dict[str, Any] = {"model": "gemini-3-pro-preview", "tools": RESPONSES_TOOLS}
    with openai_sdk(gw, "gemini") as client:
        if stream:
            completed = list(client.responses.create(input=ASK, stream=True, **fields))[-1]
            assert completed.type == "response.completed"
            output = completed.response.output
        else:
            output = client.responses.create(input=ASK, **fields).output
        calls = [item for item in output if item.type == "function_call"]
        items: list[Any] = [
            {"role": "user", "content": ASK},
            *[item.model_dump(exclude_none=True) for item in output],
            *[{"type": "function_call_output", "call_id": c.call_id, "output": RESULT} for c in calls],
        ]
        client.responses.create(input=items, **fields)
    assert_gemini_got_its_signature_back(fake, stream)
