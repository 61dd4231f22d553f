"""ai-data-masking through a real gateway, the mock model and the official SDKs: the
provider sees placeholders and never the e-mail or card; the client gets the originals
back, in whole answers and in streams (a placeholder split across events included);
the model name and parameters leave untouched; a deny word or ``mode: deny`` answers
with the refusal and sends nothing.

The mock echoes the start of the last user message by default and answers exactly
``x-mock-reply`` when asked, so the placeholders the gateway issues ([EMAIL_1], [CARD_1]:
numbered per kind, in order of appearance) can be put into the model's answer. The
responses API, which the mock does not serve, is answered by ``Responder`` below: it
echoes what it got, as one answer or one character per event.

Also here: every API that carries prompt text is masked (the responses API's input and
instructions, Anthropic count_tokens, tool descriptions), however the value is written
(fullwidth letters, zero-width characters).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from tests.conftest import Proc, start_process
from tollway.mockllm.replies import split_chunks

CONFIG = """
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: mock, type: openai, baseUrl: "{mock}/v1", apiTokens: [sk-provider]}}
  - {{id: responder, type: openai, baseUrl: "{responder}/v1", apiTokens: [sk-provider]}}
  - {{id: counter, type: claude, baseUrl: "{mock}", apiTokens: [sk-provider]}}
  - {{id: gemini, type: gemini, baseUrl: "{responder}", apiTokens: [g-provider]}}
routes:
  - {{name: main, path_prefix: /v1/, provider: mock, model_providers: {{"claude-counter": counter}}}}
  - {{name: strict, path_prefix: /strict/v1/, provider: mock}}
  - {{name: responses, path_prefix: /responder/v1/, provider: responder}}
  - {{name: gemini, path_prefix: /gemini/v1/, provider: gemini}}
plugins:
  - name: ai-data-masking
    defaultConfig:
      deny_words: ["project falcon"]
      deny_message: "That topic is off limits."
    matchRules:
      - ingress: [strict]
        config: {{mode: deny}}
  - name: ai-statistics
    defaultConfig:
      attributes: [{{key: question}}, {{key: answer}}, {{key: card, value_source: request_body, value: card}}]
"""
EMAIL = "bob.smith@example.com"
CARD = "4111 1111 1111 1111"
PROMPT = f"Please email {EMAIL} the receipt for card {CARD}."
MASKED = "Please email [EMAIL_1] the receipt for card [CARD_1]."
REPLY = "Done: the receipt for [CARD_1] went to [EMAIL_1]."
RESTORED = f"Done: the receipt for {CARD} went to {EMAIL}."
Requests = Callable[[], list[dict[str, Any]]]


class Responder(ThreadingHTTPServer):
    """A provider of the responses API that echoes the text it got: ``You said: <input>``
    (``input`` as a string; ``ok`` for items), as one answer or, with ``stream``, one
    character per event. Gemini's own generateContent and streamGenerateContent echo the
    last part's text so too; an image generation echoes its prompt as the revised prompt;
    Gemini's other methods, and any other path, answer ``{}``."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Echo)
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Responder

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.bodies.append(body)
        self.server.paths.append(self.path)
        if ":" in self.path or not self.path.endswith("/responses"):
            self._gemini(body)
            return
        text = f"You said: {body['input']}" if isinstance(body["input"], str) else "ok"
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        item = {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant", "content": [part]}
        usage = {
            "input_tokens": 3,
            "output_tokens": 5,
            "total_tokens": 8,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
        done = {"id": "resp_1", "object": "response", "created_at": 1, "status": "completed", "model": body["model"],
                "instructions": body.get("instructions"), "output": [item], "usage": usage, "tools": [],
                "parallel_tool_calls": True, "tool_choice": "auto"}  # fmt: skip
        if not body.get("stream"):
            self._send("application/json", json.dumps(done).encode())
            return
        place = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": {**done, "status": "in_progress", "output": [], "usage": None}},
            {"type": "response.output_item.added", "output_index": 0, "item": {**item, "content": []}},
            {"type": "response.content_part.added", **place, "part": {**part, "text": ""}},
            *({"type": "response.output_text.delta", **place, "delta": ch, "logprobs": []} for ch in text),
            {"type": "response.output_text.done", **place, "text": text, "logprobs": []},
            {"type": "response.content_part.done", **place, "part": part},
            {"type": "response.output_item.done", "output_index": 0, "item": item},
            {"type": "response.completed", "response": done},
        ]
        raw = b"".join(
            f"event: {e['type']}\ndata: {json.dumps({**e, 'sequence_number': n})}\n\n".encode()
            for n, e in enumerate(events)
        )
        self._send("text/event-stream", raw)

    def _gemini(self, body: dict[str, Any]) -> None:
        if self.path.endswith("/images/generations"):  # the image's revised prompt: the one it got
            image = {"url": "https://images.example/1.png", "revised_prompt": body["prompt"]}
            self._send("application/json", json.dumps({"created": 1, "data": [image]}).encode())
            return
        if ":generateContent" not in self.path and ":streamGenerateContent" not in self.path:
            self._send("application/json", b"{}")
            return
        text = "You said: " + body["contents"][-1]["parts"][-1]["text"]
        usage = {"promptTokenCount": 3, "candidatesTokenCount": 5, "totalTokenCount": 8}

        def answer(piece: str, finish: bool) -> bytes:
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": piece}]}, "index": 0}
            if finish:
                candidate["finishReason"] = "STOP"
            return json.dumps({"candidates": [candidate], "usageMetadata": usage, "modelVersion": "g"}).encode()

        if ":generateContent" in self.path:
            self._send("application/json", answer(text, True))
            return
        events = [answer(ch, False) for ch in text] + [answer("", True)]
        if "alt=sse" not in self.path:  # the same chunks in one JSON array
            self._send("application/json", b"[" + b",".join(events) + b"]")
            return
        self._send("text/event-stream", b"".join(b"data: " + e + b"\n\n" for e in events))

    def _send(self, content_type: str, payload: bytes) -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no request lines in the test output


@pytest.fixture(scope="module")
def responder() -> Iterator[Responder]:
    server = Responder()
    thread = threading.Thread(target=server.serve_forever, name="responder", daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture(scope="module")
def gw(mock_llm: Proc, responder: Responder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    folder: Path = tmp_path_factory.mktemp("data-masking")
    (folder / "tollway.yaml").write_text(CONFIG.format(mock=mock_llm.url, responder=responder.url))
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


def test_the_usage_record_keeps_the_masked_text_as_the_provider_saw_it(
    sdk: openai.OpenAI, gw: Proc, mock_requests: Requests
) -> None:
    """ai-statistics' question, answer and body attributes: masked, as the provider saw
    them (the raw question had the e-mail and card in the database), and agreeing."""
    sdk.chat.completions.create(
        model="mock-gpt",
        messages=[{"role": "user", "content": PROMPT}],
        extra_headers={"x-mock-reply": REPLY, "x-request-id": "masked-stats-1"},
        extra_body={"card": CARD},
    )
    assert_masked_upstream(mock_requests)
    found = httpx.get(gw.admin_url + "/api/requests", params={"limit": "50"}, timeout=10).json()["requests"]
    (record,) = [r for r in found if r["request_id"] == "masked-stats-1"]
    assert record["attributes"] == {"question": MASKED, "answer": REPLY, "card": "[CARD_1]"}
    assert EMAIL not in json.dumps(record) and CARD not in json.dumps(record)


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


@pytest.mark.parametrize(
    "written",
    [
        *("project\nfalcon", "Project\tFalcon", "project  falcon", "project\r\n\tfalcon"),
        # Cyrillic о and е, Greek ο, Cyrillic Р: letters drawn like Latin ones.
        *("pr\u043eject falcon", "proj\u0435ct falc\u03bfn", "\u0420roject Falcon"),
    ],
)
def test_a_deny_phrase_broken_by_whitespace_or_spelled_in_lookalikes_is_still_refused(
    sdk: openai.OpenAI, mock_requests: Requests, written: str
) -> None:
    answer = sdk.chat.completions.create(
        model="mock-gpt", messages=[{"role": "user", "content": f"Status of {written}?"}]
    )
    assert answer.choices[0].message.content == "That topic is off limits."
    assert mock_requests() == []


def test_text_in_another_script_is_not_read_as_latin(sdk: openai.OpenAI, mock_requests: Requests) -> None:
    """Only words that mix in Latin, or whose every letter has a Latin lookalike, are
    folded: Russian prose passes as written (and is not masked)."""
    text = "\u041f\u0440\u0438\u0432\u0435\u0442 \u0438\u0437 \u041c\u043e\u0441\u043a\u0432\u044b"
    text += ", project\u2011falcons?"  # (a non-breaking hyphen: not the phrase, folded or not)
    answer = sdk.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": text}])
    assert answer.choices[0].message.content == f"This is a mock reply to: {text}"
    assert [m["content"] for m in orjson.loads(mock_requests()[0]["body"])["messages"]] == [text]


def test_deny_in_a_stream(sdk: openai.OpenAI, mock_requests: Requests) -> None:
    stream = sdk.chat.completions.create(
        model="mock-gpt", messages=[{"role": "user", "content": "project falcon"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "That topic is off limits."
    assert mock_requests() == []


def test_a_deny_word_in_a_whole_answer_gives_the_refusal_instead(sdk: openai.OpenAI, mock_requests: Requests) -> None:
    """Higress blocks on the answer too: the model's "project falcon" (any case, with
    the originals put back first) never reaches the client."""
    raw = sdk.chat.completions.with_raw_response.create(
        model="mock-gpt",
        messages=[{"role": "user", "content": PROMPT}],
        extra_headers={"x-mock-reply": "Sent to [EMAIL_1]. Also: the Project  Falcon plan."},
    )
    assert raw.status_code == 200 and raw.headers["x-tollway-reason"] == "ai-data-masking.denied"
    assert raw.parse().choices[0].message.content == "That topic is off limits."
    assert len(mock_requests()) == 1  # it was asked: the answer is what was refused
    clean = sdk.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "falcons?"}])
    assert clean.choices[0].message.content == "This is a mock reply to: falcons?"


def test_a_deny_word_split_between_stream_events_ends_the_stream_with_an_error(gw: Proc) -> None:
    reply = "Here it is: the project falcon plan, in full."
    n = chunks_splitting(reply, "project falcon")
    body = {"model": "mock-gpt", "stream": True, "messages": [{"role": "user", "content": "the plan?"}]}
    headers = {"x-mock-reply": reply, "x-mock-chunks": str(n)}
    with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=10) as r:
        assert r.status_code == 200
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))
    assert "falcon" not in text and reply.startswith(text)
    assert events[-1] == {
        "error": {"message": "That topic is off limits.", "type": "api_error", "code": "request_blocked"}
    }


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


# --- every API that carries prompt text (SPEC §14) -----------------------------------------

DISGUISED = "ｂｏｂ.ｓｍｉｔｈ＠example\u200b.com"  # fullwidth letters and @, a zero-width space


def test_responses_input_and_instructions_are_masked_and_the_answer_restored(gw: Proc, responder: Responder) -> None:
    responder.bodies.clear()
    with openai.OpenAI(base_url=gw.url + "/responder/v1", api_key="unused", max_retries=0, timeout=10) as client:
        answer = client.responses.create(
            model="mock-gpt", input=f"Mail {DISGUISED} and {EMAIL}", instructions=f"Sign as {EMAIL}.", temperature=0.2
        )
        assert answer.output_text == f"You said: Mail {DISGUISED} and {EMAIL}"
        assert answer.instructions == f"Sign as {EMAIL}."
        with client.responses.stream(model="mock-gpt", input=f"Card {CARD} for {DISGUISED}") as stream:
            deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
            final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == f"You said: Card {CARD} for {DISGUISED}"
    first, second = responder.bodies
    # One placeholder per address, the same one wherever it comes (which is first is the
    # walk's business).
    disguised, plain = re.fullmatch(r"Mail (\[EMAIL_\d\]) and (\[EMAIL_\d\])", first["input"]).groups()  # type: ignore[union-attr]
    assert disguised != plain and first["instructions"] == f"Sign as {plain}."
    assert first["model"] == "mock-gpt" and first["temperature"] == 0.2
    assert re.fullmatch(r"Card \[CARD_1\] for \[EMAIL_\d\]", second["input"]) and second["stream"] is True


def test_responses_input_items_and_function_tools(gw: Proc, responder: Responder) -> None:
    responder.bodies.clear()
    tool: Any = {"type": "function", "name": "mail", "description": f"Mails {EMAIL}.", "parameters": {"type": "object"}}
    items: Any = [
        {"role": "user", "content": [{"type": "input_text", "text": f"Mail {DISGUISED}"}]},
        {"type": "function_call", "call_id": "c1", "name": "mail", "arguments": json.dumps({"to": EMAIL})},
        {"type": "function_call_output", "call_id": "c1", "output": f"sent to {EMAIL}"},
    ]
    with openai.OpenAI(base_url=gw.url + "/responder/v1", api_key="unused", max_retries=0, timeout=10) as client:
        answer = client.responses.create(model="mock-gpt", input=items, tools=[tool], user=EMAIL)
    assert answer.output_text == "ok"
    (sent,) = responder.bodies
    raw = json.dumps(sent, ensure_ascii=False)
    assert "bob" not in raw and "smith" not in raw
    assert sent["input"][0]["content"][0]["text"] == "Mail [EMAIL_1]"
    assert json.loads(sent["input"][1]["arguments"]) == {"to": "[EMAIL_2]"}
    assert sent["input"][2]["output"] == "sent to [EMAIL_2]"
    assert sent["tools"][0] == {**tool, "description": "Mails [EMAIL_2]."} and sent["user"] == "[EMAIL_2]"


def test_count_tokens_is_masked(gw: Proc, mock_requests: Requests) -> None:
    with anthropic.Anthropic(base_url=gw.url, api_key="unused", max_retries=0, timeout=10) as client:
        # Only an Anthropic provider counts (others get the gateway's estimate, no call).
        counted = client.messages.count_tokens(
            model="claude-counter",
            system=f"The customer is {DISGUISED}.",
            messages=[{"role": "user", "content": f"Refund card {CARD}."}],
            tools=[{"name": "refund", "description": f"Refunds {EMAIL}", "input_schema": {"type": "object"}}],
        )
    assert counted.input_tokens > 0
    (seen,) = mock_requests()
    assert seen["path"] == "/v1/messages/count_tokens"
    body = orjson.loads(seen["body"])
    assert body["system"] == "The customer is [EMAIL_1]." and body["messages"][0]["content"] == "Refund card [CARD_1]."
    assert body["tools"][0]["description"] == "Refunds [EMAIL_2]" and body["model"] == "claude-counter"


def test_chat_tool_descriptions_are_masked(sdk: openai.OpenAI, mock_requests: Requests) -> None:
    tool: Any = {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": f"Looks up orders of {DISGUISED}",
            "parameters": {"type": "object", "properties": {
                "card": {"type": "string", "description": f"e.g. {CARD}"},
                # Named as an identifier is: its schema is still text a model reads.
                "url": {"type": "string", "description": f"their page, as {EMAIL} gave it"},
            }},
        },
    }  # fmt: skip
    answer = sdk.chat.completions.create(
        model="mock-gpt", messages=[{"role": "user", "content": "my orders?"}], tools=[tool], user=EMAIL,
        metadata={"contact": EMAIL},
    )  # fmt: skip
    assert answer.choices[0].message is not None
    (seen,) = mock_requests()
    body = orjson.loads(seen["body"])
    function = body["tools"][0]["function"]
    # One placeholder for each address (numbered in the order the body has them).
    disguised, plain = function["description"].removeprefix("Looks up orders of "), body["user"]
    assert {disguised, plain} == {"[EMAIL_1]", "[EMAIL_2]"} and function["name"] == "lookup"
    assert function["parameters"]["properties"]["card"] == {"type": "string", "description": "e.g. [CARD_1]"}
    assert function["parameters"]["properties"]["url"]["description"] == f"their page, as {plain} gave it"
    assert body["metadata"] == {"contact": plain}
    assert "bob" not in seen["body"] and "4111" not in seen["body"]


def test_moderations_and_responses_input_tokens_and_compaction_are_masked(gw: Proc, responder: Responder) -> None:
    responder.bodies.clear()
    with httpx.Client(base_url=gw.url + "/responder/v1", timeout=10) as http:
        http.post("/moderations", json={"model": "omni-moderation-latest", "input": f"Mail {DISGUISED}"})
        parts: list[dict[str, Any]] = [
            {"type": "text", "text": f"card {CARD}"},
            {"type": "image_url", "image_url": {"url": "https://x/a.png"}},
        ]
        http.post("/moderations", json={"model": "omni-moderation-latest", "input": parts})
        http.post("/moderations", json={"input": [f"to {EMAIL}", "hello"]})
        http.post("/responses/input_tokens", json={"model": "mock-gpt", "input": f"Mail {EMAIL}", "instructions": CARD})
        http.post("/responses/compact", json={"model": "mock-gpt", "input": f"Mail {EMAIL}"})
        refused = http.post("/moderations", json={"input": "the project falcon plan"})
    assert refused.headers["x-tollway-reason"] == "ai-data-masking.denied"
    assert responder.bodies == [
        {"model": "omni-moderation-latest", "input": "Mail [EMAIL_1]"},
        {"model": "omni-moderation-latest", "input": [{**parts[0], "text": "card [CARD_1]"}, parts[1]]},
        {"input": ["to [EMAIL_1]", "hello"]},
        {"model": "mock-gpt", "input": "Mail [EMAIL_1]", "instructions": "[CARD_1]"},
        {"model": "mock-gpt", "input": "Mail [EMAIL_1]"},
    ]


def test_geminis_own_api_is_masked_and_its_answers_restored(gw: Proc, responder: Responder) -> None:
    """generateContent (whole and streamed), countTokens, embedContent and
    batchEmbedContents: contents, the system instruction and function declarations
    leave masked; the answer, one character an event when streamed, comes back whole."""
    responder.bodies.clear()
    responder.paths.clear()
    tools = [{"functionDeclarations": [{"name": "mail", "description": f"Mails {EMAIL}", "parameters": {}}]}]
    body = {
        "contents": [{"role": "user", "parts": [{"text": f"Card {CARD} for {DISGUISED}"}]}],
        "systemInstruction": {"parts": [{"text": f"Sign as {EMAIL}."}]},
        "tools": tools,
    }
    echo = f"You said: Card {CARD} for {DISGUISED}"
    with httpx.Client(base_url=gw.url + "/gemini/v1/models", timeout=10) as http:
        whole = http.post("/gemini-2.5-flash:generateContent", json=body).json()
        assert whole["candidates"][0]["content"]["parts"][0]["text"] == echo
        with http.stream("POST", "/gemini-2.5-flash:streamGenerateContent", params={"alt": "sse"}, json=body) as r:
            chunks = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
        pieces = [p["text"] for c in chunks for p in c["candidates"][0]["content"]["parts"]]
        assert "".join(pieces) == echo and not any("[" in p for p in pieces)
        # Without alt=sse the chunks come in one JSON array: a placeholder cut between two
        # of them is put back as in a stream.
        array = http.post("/gemini-2.5-flash:streamGenerateContent", json=body).json()
        pieces = [p["text"] for c in array for p in c["candidates"][0]["content"]["parts"]]
        assert "".join(pieces) == echo and not any("[" in p for p in pieces)
        http.post("/gemini-2.5-flash:countTokens", json={"contents": body["contents"]})
        http.post("/text-embedding-004:embedContent", json={"content": {"parts": [{"text": f"to {EMAIL}"}]}})
        requests = [{"model": "models/text-embedding-004", "content": {"parts": [{"text": CARD}]}}]
        http.post("/text-embedding-004:batchEmbedContents", json={"requests": requests})
        refused = http.post(
            "/gemini-2.5-flash:generateContent", json={"contents": [{"parts": [{"text": "project falcon"}]}]}
        )
        assert refused.headers["x-tollway-reason"] == "ai-data-masking.denied"
    assert len(responder.bodies) == 6 and all(":" in p for p in responder.paths)
    sent = json.dumps(responder.bodies, ensure_ascii=False)
    assert "bob" not in sent and "smith" not in sent and "4111" not in sent
    first = responder.bodies[0]
    assert re.fullmatch(r"Card \[CARD_1\] for \[EMAIL_\d\]", first["contents"][0]["parts"][0]["text"])
    assert first["tools"][0]["functionDeclarations"][0]["description"].startswith("Mails [EMAIL_")
    assert responder.bodies[5]["requests"][0]["model"] == "models/text-embedding-004"


def test_every_other_api_is_masked_but_the_stateful_ones(gw: Proc, responder: Responder) -> None:
    """Masking fails closed: an image prompt, speech input, a vector store search, Imagen's
    ``:predict``, and paths the gateway does not know (a provider may serve them all the
    same) leave masked; a generated image's revised prompt comes back restored. A thread's
    message is kept by the provider for later calls, which could not restore it: it
    leaves as written (``deny_raw`` is the way to read it)."""
    responder.bodies.clear()
    responder.paths.clear()
    with httpx.Client(base_url=gw.url + "/responder/v1", timeout=10) as http:
        image = http.post("/images/generations", json={"model": "gpt-image-1", "prompt": f"A card {CARD}"})
        assert image.json()["data"][0]["revised_prompt"] == f"A card {CARD}"
        http.post("/audio/speech", json={"model": "tts-1", "input": f"Mail {EMAIL}", "voice": "alloy"})
        http.post("/vector_stores/vs_1/search", json={"query": f"invoices of {EMAIL}"})
        http.post("/chat/completions/x", json={"model": "m", "messages": [{"role": "user", "content": EMAIL}]})
        http.post("/brand-new-api", json={"text": f"to {EMAIL}"})
        http.post("/threads/thread_1/messages", json={"role": "user", "content": f"to {EMAIL}"})
        refused = http.post("/images/generations", json={"prompt": "the project falcon logo"})
        assert refused.headers["x-tollway-reason"] == "ai-data-masking.denied"
    with httpx.Client(base_url=gw.url + "/gemini/v1/models", timeout=10) as http:
        http.post("/imagen-4.0-generate-001:predict", json={"instances": [{"prompt": f"A card {CARD}"}]})
    assert responder.bodies == [
        {"model": "gpt-image-1", "prompt": "A card [CARD_1]"},
        {"model": "tts-1", "input": "Mail [EMAIL_1]", "voice": "alloy"},
        {"query": "invoices of [EMAIL_1]"},
        {"model": "m", "messages": [{"role": "user", "content": "[EMAIL_1]"}]},
        {"text": "to [EMAIL_1]"},
        {"role": "user", "content": f"to {EMAIL}"},
        {"instances": [{"prompt": "A card [CARD_1]"}]},
    ]


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH"])
def test_a_prompt_in_the_body_of_any_method_is_masked(gw: Proc, mock_requests: Requests, method: str) -> None:
    # Whatever the method, a body goes upstream: the fuzzer found a GET carrying one.
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": PROMPT}]}
    httpx.request(method, gw.url + "/v1/chat/completions", json=body, timeout=10)
    (seen,) = mock_requests()
    assert EMAIL not in seen["body"] and "[EMAIL_1]" in seen["body"]


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("write to alice@corp-secret.com--she knows", "alice@corp-secret"),
        ("the alice@corp-secret.com-based team", "alice@corp-secret"),
        ("contact 10.0.0.1bob@x.com", "bob@x.com"),
    ],
)
def test_addresses_next_to_dashes_and_other_values_are_masked(
    sdk: openai.OpenAI, mock_requests: Requests, text: str, secret: str
) -> None:
    sdk.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": text}])
    (seen,) = mock_requests()
    assert secret not in seen["body"] and "[EMAIL_1]" in seen["body"]


# --- adversarial prompts cost what any prompt of their size does ------------------------------


def _best_time(gw: Proc, text: str, rounds: int = 2) -> float:
    body = orjson.dumps({"model": "mock-gpt", "messages": [{"role": "user", "content": text}]})
    best = float("inf")
    with httpx.Client(timeout=120) as client:
        for _ in range(rounds):
            started = time.perf_counter()
            answered = client.post(gw.url + "/v1/chat/completions", content=body)
            best = min(best, time.perf_counter() - started)
            assert answered.status_code == 200
    return best


def test_a_body_of_private_key_headers_is_masked_in_time_linear_in_its_size(gw: Proc, mock_requests: Requests) -> None:
    """Half a megabyte of "-----BEGIN PRIVATE KEY-----" lines and no END: the private key
    detector once tried 16,384 characters after each (seconds on the event loop, every
    other request stalled). Now it costs about what ordinary prose of the same size does
    (a ratio, not a time: the machine may be slow, the two calls are equally so)."""
    size = 512 * 1024
    benign = ("The quarterly report is due on Friday; please review section two. " * (size // 66))[:size]
    headers = ("-----BEGIN PRIVATE KEY-----\n" * (size // 28 + 1))[:size]
    slow, fast = _best_time(gw, headers), _best_time(gw, benign)
    assert slow <= 20 * fast, f"{slow:.3f}s for the headers, {fast:.3f}s for prose"
