"""Tests of the mock model server (mock-llm), through real HTTP with the official SDKs.

One server process (``serve("127.0.0.1", 0)``) serves the module; tests that read the
request record clear it first. The ASGI app driven in-process is tested in
tests/unit/mockllm/.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anthropic
import httpx
import openai
import pytest

from tests.support.mockllm_support import chat
from tollway.mockllm import count_tokens, replies

BANNER = re.compile(r"mock-llm listening on (http://127\.0\.0\.1:(\d+))")
WEATHER_TOOL_OPENAI: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}
WEATHER_TOOL_ANTHROPIC: Any = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
}


# --- fixtures and helpers ---------------------------------------------------------------


def _start_server(log: Path, port: int = 0) -> subprocess.Popen[bytes]:
    code = f"import sys; from tollway.mockllm import serve; sys.exit(serve('127.0.0.1', {port}))"
    with log.open("wb") as err:
        return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=err)


def _wait_banner(log: Path, proc: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = BANNER.search(log.read_text())
        if found:
            return found.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    raise AssertionError(f"mock-llm did not start: {log.read_text()!r}")


def _stop(proc: subprocess.Popen[bytes], signum: int) -> int:
    proc.send_signal(signum)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


@pytest.fixture(scope="module")
def mock_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("mockllm") / "stderr.txt"
    proc = _start_server(log)
    try:
        url = _wait_banner(log, proc)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    yield url
    # SIGTERM must end the server cleanly, with nothing logged after the banner.
    assert _stop(proc, signal.SIGTERM) == 0
    assert log.read_text().strip().splitlines() == [f"mock-llm listening on {url}"]


@pytest.fixture
def oai(mock_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{mock_url}/v1", api_key="test", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(mock_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=mock_url, api_key="test", max_retries=0) as client:
        yield client


@pytest.fixture
def http(mock_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mock_url, timeout=10) as client:
        yield client


def _raw_exchange(url: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> bytes:
    """POST over a bare socket and return every byte received until the server closes."""
    parts = urlsplit(url)
    payload = json.dumps(body).encode()
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    request = (
        f"POST {path} HTTP/1.1\r\nhost: {parts.netloc}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\nconnection: close\r\n{head}\r\n"
    ).encode() + payload
    received: list[bytes] = []
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            received.append(data)
    return b"".join(received)


def _sse_data(lines: list[str]) -> list[str]:
    return [line[len("data: ") :] for line in lines if line.startswith("data: ")]


# --- OpenAI chat completions ------------------------------------------------------------


def test_chat_completion_reply_and_truthful_usage(oai: openai.OpenAI) -> None:
    system = "You are terse."
    user = "Hello there, how are you doing today?"
    result = oai.chat.completions.create(
        model="mock-gpt",
        messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
    )
    choice = result.choices[0]
    assert choice.message.content == f"This is a mock reply to: {user}"
    assert choice.message.role == "assistant"
    assert choice.message.refusal is None
    assert choice.finish_reason == "stop"
    assert result.model == "mock-gpt"
    assert result.object == "chat.completion"
    assert result.id.startswith("chatcmpl-mock-")
    assert result.system_fingerprint is None
    assert isinstance(result.created, int)
    assert result.usage is not None
    assert result.usage.prompt_tokens == count_tokens(system) + count_tokens(user)
    assert result.usage.completion_tokens == count_tokens(choice.message.content)
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens


def test_chat_completion_is_deterministic(oai: openai.OpenAI) -> None:
    def ask(text: str) -> str | None:
        messages: Any = [{"role": "user", "content": text}]
        return oai.chat.completions.create(model="m", messages=messages).choices[0].message.content

    assert ask("same question") == ask("same question")
    assert ask("same question") != ask("another question")


def test_chat_content_parts_count_toward_prompt_tokens(oai: openai.OpenAI) -> None:
    result = oai.chat.completions.create(
        model="mock-gpt-mini",
        messages=[
            {"role": "system", "content": [{"type": "text", "text": "Be kind."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "first part"},
                    {"type": "text", "text": "and more"},
                ],
            },
        ],
    )
    assert result.model == "mock-gpt-mini"
    assert result.choices[0].message.content == "This is a mock reply to: first part and more"
    assert result.usage is not None and result.usage.prompt_tokens == 6


def test_chat_max_tokens_truncates_with_length(oai: openai.OpenAI) -> None:
    result = oai.chat.completions.create(
        model="mock-gpt", messages=[{"role": "user", "content": "hi"}], max_completion_tokens=3
    )
    assert result.choices[0].message.content == "This is a"
    assert result.choices[0].finish_reason == "length"
    assert result.usage is not None and result.usage.completion_tokens == 3


def test_chat_stream_with_usage(oai: openai.OpenAI) -> None:
    prompt = "Stream me something nice"
    expected = f"This is a mock reply to: {prompt}"
    with oai.chat.completions.create(
        model="mock-gpt",
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" and c.model == "mock-gpt" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    first, *middle, finish, usage_chunk = chunks
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""
    assert len(middle) == 4  # the default number of content chunks
    assert "".join(c.choices[0].delta.content or "" for c in middle) == expected
    assert finish.choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.prompt_tokens == count_tokens(prompt)
    assert usage_chunk.usage.completion_tokens == count_tokens(expected)


def test_chat_stream_without_usage_ends_with_done(http: httpx.Client) -> None:
    body = chat("hello", stream=True)
    with http.stream("POST", "/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        data = _sse_data(list(response.iter_lines()))
    assert data[-1] == "[DONE]"
    chunks = [json.loads(item) for item in data[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in chunk for chunk in chunks)


def test_chat_tool_call(oai: openai.OpenAI) -> None:
    result = oai.chat.completions.create(
        model="mock-gpt",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER_TOOL_OPENAI],
    )
    choice = result.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "Paris"}
    assert result.usage is not None
    assert result.usage.completion_tokens == count_tokens(call.function.arguments)


def test_chat_tool_call_round_trip_and_none(oai: openai.OpenAI) -> None:
    messages: Any = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_mock_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_mock_1", "content": "Sunny, 21C"},
    ]
    tools: Any = [WEATHER_TOOL_OPENAI]
    after = oai.chat.completions.create(model="mock-gpt", messages=messages, tools=tools)
    assert after.choices[0].finish_reason == "stop"
    assert after.choices[0].message.content
    declined = oai.chat.completions.create(model="mock-gpt", messages=messages[:1], tools=tools, tool_choice="none")
    assert declined.choices[0].message.tool_calls is None


def test_chat_tool_call_stream(oai: openai.OpenAI) -> None:
    with oai.chat.completions.create(
        model="mock-gpt",
        messages=[{"role": "user", "content": "weather in Paris please"}],
        tools=[WEATHER_TOOL_OPENAI],
        stream=True,
    ) as stream:
        chunks = list(stream)
    opening = chunks[0].choices[0].delta.tool_calls
    assert opening is not None and opening[0].id == "call_mock_1"
    assert opening[0].function is not None and opening[0].function.name == "get_weather"
    arguments = ""
    for chunk in chunks[1:-1]:
        for call in chunk.choices[0].delta.tool_calls or []:
            assert call.index == 0
            arguments += call.function.arguments or "" if call.function else ""
    assert json.loads(arguments) == {"location": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_reply_header_sets_exact_text(oai: openai.OpenAI) -> None:
    text = "Exactly this, and nothing else."
    result = oai.chat.completions.create(
        model="mock-gpt",
        messages=[{"role": "user", "content": "anything"}],
        extra_headers={"x-mock-reply": text},
    )
    assert result.choices[0].message.content == text
    assert result.usage is not None and result.usage.completion_tokens == count_tokens(text)


def test_chunks_header_sets_number_of_content_chunks(oai: openai.OpenAI) -> None:
    with oai.chat.completions.create(
        model="mock-gpt",
        messages=[{"role": "user", "content": "count my chunks"}],
        stream=True,
        extra_headers={"x-mock-chunks": "7"},
    ) as stream:
        contents = [c.choices[0].delta.content for c in stream if c.choices[0].delta.content]
    assert len(contents) == 7
    assert "".join(contents) == "This is a mock reply to: count my chunks"


def test_paths_work_with_and_without_v1(http: httpx.Client) -> None:
    with_prefix = http.post("/v1/chat/completions", json=chat("path test"))
    without = http.post("/chat/completions", json=chat("path test"))
    assert with_prefix.status_code == without.status_code == 200
    content = with_prefix.json()["choices"][0]["message"]["content"]
    assert content == without.json()["choices"][0]["message"]["content"]
    assert http.get("/models").json() == http.get("/v1/models").json()


# --- OpenAI completions, embeddings, models ---------------------------------------------


def test_completions(oai: openai.OpenAI) -> None:
    result = oai.completions.create(model="mock-gpt", prompt="Say this is a test")
    assert result.object == "text_completion"
    assert result.id.startswith("cmpl-mock-")
    assert result.choices[0].text == "This is a mock reply to: Say this is a test"
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None
    assert result.usage.prompt_tokens == 5
    assert result.usage.completion_tokens == count_tokens(result.choices[0].text)

    several = oai.completions.create(model="mock-gpt", prompt=["one two", "three"], max_tokens=2)
    assert [c.text for c in several.choices] == ["This is", "This is"]
    assert [c.index for c in several.choices] == [0, 1]
    assert all(c.finish_reason == "length" for c in several.choices)
    assert several.usage is not None
    assert (several.usage.prompt_tokens, several.usage.completion_tokens) == (3, 4)


def test_completions_stream(oai: openai.OpenAI) -> None:
    with oai.completions.create(
        model="mock-gpt",
        prompt="stream a completion",
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        chunks = list(stream)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == "This is a mock reply to: stream a completion"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == count_tokens(text)


def test_embeddings_default_base64(oai: openai.OpenAI, http: httpx.Client) -> None:
    assert http.delete("/_mock/requests").status_code == 200
    result = oai.embeddings.create(model="mock-embed", input=["hello world", "goodbye"])
    [record] = http.get("/_mock/requests").json()["requests"]
    assert json.loads(record["body"])["encoding_format"] == "base64"  # the SDK's default
    assert [d.index for d in result.data] == [0, 1]
    assert result.data[0].embedding == pytest.approx(replies.embedding_vector("hello world"))
    assert len(result.data[1].embedding) == 8
    assert result.model == "mock-embed"
    assert result.usage.prompt_tokens == result.usage.total_tokens == 3

    floats = oai.embeddings.create(model="mock-embed", input="hello world", encoding_format="float")
    assert floats.data[0].embedding == result.data[0].embedding

    raw = http.post(
        "/v1/embeddings",
        json={"model": "mock-embed", "input": [[1, 2, 3]], "encoding_format": "base64"},
    ).json()
    assert isinstance(raw["data"][0]["embedding"], str)
    assert raw["usage"]["prompt_tokens"] == 3


def test_models_list(oai: openai.OpenAI) -> None:
    ids = [model.id for model in oai.models.list()]
    assert ids == ["mock-gpt", "mock-gpt-mini", "mock-claude", "mock-embed"]
    assert oai.models.retrieve("mock-claude").owned_by == "tollway-mock"
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("no-such-model")


# --- Anthropic messages -----------------------------------------------------------------


def test_anthropic_message(claude: anthropic.Anthropic) -> None:
    system = "You are a helpful assistant."
    user = "Write a haiku about the sea"
    message = claude.messages.create(
        model="mock-claude",
        max_tokens=100,
        system=system,
        messages=[{"role": "user", "content": user}],
    )
    assert message.id.startswith("msg_mock_")
    assert message.model == "mock-claude"
    assert message.role == "assistant"
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    block = message.content[0]
    assert block.type == "text"
    assert block.text == f"This is a mock reply to: {user}"
    assert message.usage.input_tokens == count_tokens(system) + count_tokens(user)
    assert message.usage.output_tokens == count_tokens(block.text)


def test_anthropic_max_tokens(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(
        model="mock-claude",
        max_tokens=2,
        system=[{"type": "text", "text": "one two three"}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "a b"}]}],
    )
    assert message.stop_reason == "max_tokens"
    assert message.content[0].type == "text" and message.content[0].text == "This is"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 2)


def test_anthropic_stream(claude: anthropic.Anthropic) -> None:
    kwargs: Any = {
        "model": "mock-claude",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Tell me about streams"}],
    }
    expected = claude.messages.create(**kwargs)
    with claude.messages.stream(**kwargs) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert expected.content[0].type == "text"
    assert text == expected.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == expected.usage.input_tokens
    assert final.usage.output_tokens == expected.usage.output_tokens


def test_anthropic_stream_event_sequence(http: httpx.Client) -> None:
    body = {
        "model": "mock-claude",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "events please"}],
    }
    with http.stream("POST", "/v1/messages", json=body) as response:
        lines = list(response.iter_lines())
    names = [line[len("event: ") :] for line in lines if line.startswith("event: ")]
    datas = [json.loads(item) for item in _sse_data(lines)]
    assert names == [d["type"] for d in datas]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 4,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert datas[0]["message"]["usage"]["input_tokens"] == 2
    assert datas[-2]["delta"]["stop_reason"] == "end_turn"
    text = "".join(d["delta"]["text"] for d in datas if d["type"] == "content_block_delta")
    assert datas[-2]["usage"]["output_tokens"] == count_tokens(text)


def test_anthropic_tool_use(claude: anthropic.Anthropic) -> None:
    question: Any = {"role": "user", "content": "What's the weather like in Paris?"}
    message = claude.messages.create(
        model="mock-claude", max_tokens=100, messages=[question], tools=[WEATHER_TOOL_ANTHROPIC]
    )
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use"
    assert (block.id, block.name, block.input) == (
        "toolu_mock_1",
        "get_weather",
        {"location": "Paris"},
    )
    assert message.usage.output_tokens == count_tokens(replies.TOOL_ARGUMENTS)

    with claude.messages.stream(
        model="mock-claude", max_tokens=100, messages=[question], tools=[WEATHER_TOOL_ANTHROPIC]
    ) as stream:
        streamed = stream.get_final_message()
    assert streamed.stop_reason == "tool_use"
    assert streamed.content[0].type == "tool_use"
    assert streamed.content[0].input == {"location": "Paris"}

    answer: Any = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_mock_1", "content": "Sunny"}],
    }
    follow_up = claude.messages.create(
        model="mock-claude",
        max_tokens=100,
        messages=[question, {"role": "assistant", "content": message.content}, answer],
        tools=[WEATHER_TOOL_ANTHROPIC],
    )
    assert follow_up.stop_reason == "end_turn"
    assert follow_up.content[0].type == "text"
    assert follow_up.content[0].text == "This is a mock reply to: Sunny"


def test_anthropic_count_tokens(http: httpx.Client) -> None:
    body = {"model": "mock-claude", "system": "a b", "messages": [{"role": "user", "content": "c"}]}
    assert http.post("/v1/messages/count_tokens", json=body).json() == {"input_tokens": 3}


# --- errors -----------------------------------------------------------------------------


def test_unknown_path_is_openai_404(http: httpx.Client) -> None:
    response = http.post("/v1/nothing/here", json={})
    assert response.status_code == 404
    error = response.json()["error"]
    assert {"message", "type", "code"} <= error.keys()
    assert http.get("/v1/chat/completions").status_code == 404


def test_invalid_json_is_400_in_the_route_shape(http: httpx.Client) -> None:
    openai_style = http.post("/v1/chat/completions", content=b"{not json")
    assert openai_style.status_code == 400
    assert openai_style.json()["error"]["type"] == "invalid_request_error"
    anthropic_style = http.post("/v1/messages", content=b"[1,")
    assert anthropic_style.status_code == 400
    body = anthropic_style.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"]


def test_bad_control_value_is_400(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", json=chat("x"), headers={"x-mock-chunks": "0"})
    assert response.status_code == 400
    assert "x-mock-chunks" in response.json()["error"]["message"]


def test_status_header_openai(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(
            model="mock-gpt",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-mock-status": "429"},
        )
    assert caught.value.status_code == 429
    assert "mock error 429" in caught.value.message


def test_status_header_anthropic(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APIStatusError) as caught:
        claude.messages.create(
            model="mock-claude",
            max_tokens=10,
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-mock-status": "529"},
        )
    assert caught.value.status_code == 529
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "mock error 529"},
    }


# --- timing controls (lower bounds only) ------------------------------------------------


def test_latency_header_delays_the_response(http: httpx.Client) -> None:
    start = time.monotonic()
    response = http.post("/v1/chat/completions", json=chat("x"), headers={"x-mock-latency-ms": "300"})
    assert response.status_code == 200
    assert time.monotonic() - start >= 0.29


def test_ttft_header_pauses_after_the_first_event(http: httpx.Client) -> None:
    body = chat("time to first token", stream=True)
    start = time.monotonic()
    arrivals: list[float] = []
    with http.stream("POST", "/v1/chat/completions", json=body, headers={"x-mock-ttft-ms": "400"}) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic())
    # The role chunk arrives, then nothing until the time to first token has passed.
    assert arrivals[1] - start >= 0.39
    assert arrivals[1] - arrivals[0] >= 0.25


def test_chunk_delay_header_spaces_events(http: httpx.Client) -> None:
    body = chat("slow stream", stream=True)
    headers = {"x-mock-chunk-delay-ms": "100", "x-mock-chunks": "3"}
    arrivals: list[float] = []
    with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic())
    # role, 3 contents, finish, [DONE]: 4 delayed events after the first content.
    assert len(arrivals) == 6
    assert arrivals[-1] - arrivals[1] >= 0.39


# --- connection drops -------------------------------------------------------------------


def test_drop_before_headers(oai: openai.OpenAI, mock_url: str) -> None:
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(
            model="mock-gpt",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-mock-drop": "before-headers"},
        )
    raw = _raw_exchange(mock_url, "/v1/chat/completions", chat("x"), {"x-mock-drop": "before-headers"})
    assert raw == b""


def test_drop_mid_stream_leaves_the_body_incomplete(mock_url: str, http: httpx.Client) -> None:
    body = chat("drop me", stream=True)
    complete = _raw_exchange(mock_url, "/v1/chat/completions", body, {})
    assert complete.startswith(b"HTTP/1.1 200") and complete.endswith(b"0\r\n\r\n")

    raw = _raw_exchange(mock_url, "/v1/chat/completions", body, {"x-mock-drop": "mid-stream"})
    assert raw.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding: chunked" in raw.lower()
    assert b'"content":"This is "' in raw  # the first content event got through
    assert b"[DONE]" not in raw
    assert not raw.endswith(b"0\r\n\r\n")

    with (
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", "/v1/chat/completions", json=body, headers={"x-mock-drop": "mid-stream"}) as response,
    ):
        for _line in response.iter_lines():
            pass


def test_drop_mid_body_without_stream(http: httpx.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/v1/chat/completions", json=chat("x"), headers={"x-mock-drop": "mid-stream"})


# --- request record ---------------------------------------------------------------------


def test_request_record(http: httpx.Client) -> None:
    assert http.delete("/_mock/requests").json() == {"requests": []}
    http.post("/v1/chat/completions?trace=1", json=chat("recorded"), headers={"X-Test": "yes"})
    http.get("/models")
    records = http.get("/_mock/requests").json()["requests"]
    assert [(r["method"], r["path"]) for r in records] == [
        ("POST", "/v1/chat/completions"),
        ("GET", "/models"),
    ]
    first = records[0]
    assert first["query_string"] == "trace=1"
    assert ["x-test", "yes"] in first["headers"]
    assert json.loads(first["body"]) == chat("recorded")
    http.delete("/_mock/requests")
    assert http.get("/_mock/requests").json() == {"requests": []}


# --- serve() ----------------------------------------------------------------------------


def test_serve_exits_zero_on_sigint(tmp_path: Path) -> None:
    log = tmp_path / "stderr.txt"
    proc = _start_server(log)
    try:
        url = _wait_banner(log, proc)
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.get("/v1/models").status_code == 200
    finally:
        code = _stop(proc, signal.SIGINT)
    assert code == 0


def test_serve_reports_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _start_server(tmp_path / "stderr.txt", port)
        try:
            code = proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == 1
    # One line in the CLI's own words (it was "mock-llm: … [Errno 98] …").
    assert (
        f"tollway: mock-llm cannot listen on 127.0.0.1:{port}: address already in use"
        in (tmp_path / "stderr.txt").read_text().splitlines()
    )
