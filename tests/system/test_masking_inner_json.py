"""JSON inside JSON strings, through a real gateway (a judge's High and two Mediums):
a tool call's ``arguments`` and a tool's result are JSON text, whose own escapes the
model decodes (``\\u673a\\u5bc6`` is 机密; Python's ``json.dumps`` writes every
non-ASCII character so). ai-data-masking and request-block read them as the model
does; an original put back into a tool call's arguments goes back escaped, so the
client can parse them; a card number sent as a JSON number is masked as the string
would be.

The provider is a small fake of OpenAI's chat completions API that records each body
and answers with one tool call whose arguments name every placeholder or masked value
the request held (``{"values": [...]}``), whole or streamed two characters an event.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Proc
from tests.support.fake_provider import serve_gateway

CONFIG = """
providers: [{{id: fake, type: openai, baseUrl: "{url}/v1", apiTokens: [sk-provider]}}]
routes: [{{name: main, path_prefix: /v1/, provider: fake}}]
plugins:
  - name: request-block
    defaultConfig: {{block_bodies: [topsecret], case_sensitive: false}}
  - name: ai-data-masking
    defaultConfig:
      deny_words: ["机密"]
      replace_roles:
        - {{regex: 'C:\\\\\\S+', type: replace, value: WINPATH, restore: true}}
"""
EMAIL = "gina@example.com"
# What the fake names in its answer: placeholders, and the replace_roles value.
_NAMED = re.compile(r"\[[A-Z]+_[0-9]+\]|WINPATH")


class Provider(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Answer)
        self.bodies: list[bytes] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Provider

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["content-length"]))
        self.server.bodies.append(raw)
        body = json.loads(raw)
        arguments = json.dumps({"values": sorted(set(_NAMED.findall(raw.decode())))})
        call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": arguments}}
        head = {"id": "chatcmpl-1", "created": 1, "model": "gpt-x"}
        if body.get("stream"):
            pieces = [arguments[i : i + 2] for i in range(0, len(arguments), 2)]
            events = [
                {
                    "index": 0,
                    "delta": {
                        "role": "assistant",
                        "tool_calls": [{**call, "function": {"name": "f", "arguments": ""}}],
                    },
                }
            ]
            events += [
                {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": p}}]}} for p in pieces
            ]
            events += [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]
            out = (
                b"".join(
                    b"data: "
                    + json.dumps({**head, "object": "chat.completion.chunk", "choices": [e]}).encode()
                    + b"\n\n"
                    for e in events
                )
                + b"data: [DONE]\n\n"
            )
            kind = "text/event-stream"
        else:
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
            usage = {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}
            answer = {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
            out = json.dumps(answer).encode()
            kind = "application/json"
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    server = Provider()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def gw(provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = serve_gateway(tmp_path_factory.mktemp("inner-json"), CONFIG.format(url=provider.url))
    yield proc
    assert proc.stop() == 0


def _with_tool_turn(arguments: str, result: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "c1", "content": result},
    ]  # fmt: skip


def _call(gw: Proc, messages: list[dict[str, Any]], **more: Any) -> httpx.Response:
    body = {"model": "gpt-x", "messages": messages, **more}
    return httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=10)


def test_a_deny_word_or_a_blocked_word_escaped_inside_tool_json_is_refused(gw: Proc, provider: Provider) -> None:
    asked = len(provider.bodies)
    # As Python's json.dumps writes them: 机密 is \u673a\u5bc6 inside the arguments.
    refusal = "Sensitive words found in the question or answer have been blocked"  # (Higress's, a chat answer)
    denied = _call(gw, _with_tool_turn(json.dumps({"q": "机密"}), "{}"))
    assert denied.json()["choices"][0]["message"]["content"] == refusal, denied.text
    in_result = _call(gw, _with_tool_turn("{}", json.dumps({"r": "这是机密"})))
    assert in_result.json()["choices"][0]["message"]["content"] == refusal
    blocked = _call(gw, _with_tool_turn('{"w": "top\\u0073ecret"}', "{}"))
    assert (blocked.status_code, blocked.headers["x-tollway-reason"]) == (403, "request-block.blocked")
    assert len(provider.bodies) == asked, "the provider was asked"


def test_an_address_escaped_inside_tool_json_reaches_the_provider_masked(gw: Proc, provider: Provider) -> None:
    arguments = '{"to": "gina\\u0040example.com"}'
    result = json.dumps({"sent_to": EMAIL, "card": 4111111111111111}, ensure_ascii=True)
    answered = _call(gw, _with_tool_turn(arguments, result), metadata={"card": "x"}, user="u")
    assert answered.status_code == 200, answered.text
    sent = provider.bodies[-1].decode()
    seen = json.loads(sent)
    inner = [json.loads(seen["messages"][1]["tool_calls"][0]["function"]["arguments"]),
             json.loads(seen["messages"][2]["content"])]  # fmt: skip
    assert inner == [{"to": "[EMAIL_1]"}, {"sent_to": "[EMAIL_1]", "card": "[CARD_1]"}]
    assert "gina" not in sent and "4111" not in sent


def test_a_card_number_sent_as_a_json_number_is_masked(gw: Proc, provider: Provider) -> None:
    messages = [{"role": "user", "content": "charge it"}]
    answered = _call(gw, messages, metadata={"card": 4111111111111111, "count": 3})
    assert answered.status_code == 200, answered.text
    seen = json.loads(provider.bodies[-1])
    assert seen["metadata"] == {"card": "[CARD_1]", "count": 3}


@pytest.mark.parametrize("stream", [False, True])
def test_an_original_put_back_into_tool_arguments_keeps_them_json(gw: Proc, provider: Provider, stream: bool) -> None:
    # The path's backslashes went back raw into the arguments: "C:\Users\Bob" in a JSON
    # text is an invalid escape, and the client's json.loads failed.
    path = "C:\\Users\\Bob"
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0, timeout=10) as sdk:
        messages: list[Any] = [{"role": "user", "content": f"open {path} please"}]
        if stream:
            chunks = sdk.chat.completions.create(model="gpt-x", messages=messages, stream=True)
            arguments = "".join(
                c.choices[0].delta.tool_calls[0].function.arguments or ""
                for c in chunks
                if c.choices and c.choices[0].delta.tool_calls and c.choices[0].delta.tool_calls[0].function
            )
        else:
            answer = sdk.chat.completions.create(model="gpt-x", messages=messages)
            call = answer.choices[0].message.tool_calls
            assert call is not None
            arguments = call[0].function.arguments  # type: ignore[union-attr]
    assert "WINPATH" in provider.bodies[-1].decode() and "Users" not in provider.bodies[-1].decode()
    assert json.loads(arguments) == {"values": [path]}
