"""The organisation's provider keys never reach a client through what a provider answers
(SPEC's security rule): a provider that names the key it was sent in its error (whole,
or masked as OpenAI and Anthropic do: ``sk-proj-****abcd``), echoes it in a header,
sets cookies, or puts it in a stream's error event. Through the real HTTP surface, with
the official SDKs as clients, native and translated.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from tests.conftest import Proc
from tests.support.fake_provider import serve_gateway
from tests.support.loopback_server import LoopbackServer, read_request

OPENAI_KEY = "sk-proj-ORGKEYopenai1234567890abcd"
CLAUDE_KEY = "sk-ant-ORGKEYanthropic0987654321wxyz"
CONSUMER = "alice-key-0123456789"


class HostileProvider(LoopbackServer):
    """Answers by the model asked for: ``masked`` a 401 naming the key masked, ``echo``
    a 400 echoing the request's headers, ``stream`` a stream whose error event names
    the key; every answer with the key in a header and a cookie."""

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, raw = await read_request(reader)
            text = head.decode("latin-1")
            sent = next(
                (line.split(":", 1)[1].strip().removeprefix("Bearer ") for line in text.split("\r\n")
                 if line.lower().startswith(("authorization:", "x-api-key:"))),
                "",
            )  # fmt: skip
            model = json.loads(raw).get("model", "")
            extra = f"x-echo-key: {sent}\r\nset-cookie: session={sent}; Path=/\r\n".encode()
            if model == "stream":
                error = {"error": {"message": f"key {sent} was revoked", "type": "server_error"}}
                out = b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",' \
                      b'"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n' + \
                      f"data: {json.dumps(error)}\n\n".encode()  # fmt: skip
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n" + extra)
            else:
                if model == "masked":
                    message = f"Incorrect API key provided: {sent[:8]}****{sent[-4:]}. You can find your API key..."
                elif model == "huge":  # a long token in an error (a blob, a trace), then the key
                    message = "x" * 1_000_000 + " *" + "*" * 100_000 + f" a***{sent[-4:]}" * 20_000 + f" key {sent}"
                else:
                    message = f"bad request; headers were {text!r}"
                out = json.dumps({"error": {"message": message, "type": "invalid_request_error"}}).encode()
                status = b"401 Unauthorized" if model == "masked" else b"400 Bad Request"
                writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n" + extra)
            writer.write(b"content-length: %d\r\n\r\n%s" % (len(out), out))
            await writer.drain()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with HostileProvider() as provider:
        config = f"""
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: openai, type: openai, baseUrl: "{provider.url}/v1", apiTokens: ["{OPENAI_KEY}"]}}
  - {{id: claude, type: claude, baseUrl: "{provider.url}", apiTokens: ["{CLAUDE_KEY}"]}}
routes:
  - {{name: openai, path_prefix: /v1/, provider: openai}}
  - {{name: claude, path_prefix: /claude/v1/, provider: claude}}
plugins:
  - name: key-auth
    defaultConfig: {{keys: [authorization, x-api-key], consumers: [{{name: alice, credential: {CONSUMER}}}]}}
"""
        proc = serve_gateway(tmp_path_factory.mktemp("provider-secrets"), config)
        yield proc
        assert proc.stop() == 0


def _leaks(text: str) -> list[str]:
    return [k for k in (OPENAI_KEY, CLAUDE_KEY, OPENAI_KEY[-4:], CLAUDE_KEY[-4:]) if k in text]


@pytest.mark.parametrize("route", ["/v1", "/claude/v1"])
@pytest.mark.parametrize("model", ["masked", "echo"])
def test_an_error_answer_never_shows_the_key_to_an_openai_client(gw: Proc, route: str, model: str) -> None:
    r = httpx.post(
        gw.url + route + "/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {CONSUMER}"},
    )
    assert r.status_code == (401 if model == "masked" else 400)
    assert _leaks(r.text) == [] and _leaks(str(r.headers)) == []
    assert "[redacted]" in r.json()["error"]["message"]
    assert "set-cookie" not in r.headers and "x-echo-key" not in r.headers
    client = openai.OpenAI(base_url=gw.url + route, api_key=CONSUMER, max_retries=0)
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert _leaks(str(failed.value)) == [] and _leaks(str(failed.value.body)) == []


@pytest.mark.parametrize("route", ["/v1", "/claude/v1"])
def test_an_anthropic_client_never_sees_it_either(gw: Proc, route: str) -> None:
    client = anthropic.Anthropic(base_url=gw.url + route.removesuffix("/v1"), api_key=CONSUMER, max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as failed:
        client.messages.create(model="masked", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert failed.value.status_code == 401
    assert _leaks(str(failed.value)) == [] and _leaks(str(failed.value.body)) == []


def test_a_streams_error_event_never_shows_the_key(gw: Proc) -> None:
    with httpx.stream(
        "POST",
        gw.url + "/v1/chat/completions",
        json={"model": "stream", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        headers={"authorization": f"Bearer {CONSUMER}"},
    ) as r:
        text = r.read().decode()
        assert r.status_code == 200 and "set-cookie" not in r.headers and "x-echo-key" not in r.headers
    assert "revoked" in text and "[redacted]" in text
    assert _leaks(text) == []


def test_a_huge_error_body_is_redacted_without_holding_the_gateway_up(gw: Proc) -> None:
    """A red team's High: the masked-key pattern was tried at every position of an error
    body, unbounded, and its time grew with the square of the body's length: a 2 MB
    error held a core for minutes, every other call with it. A megabyte-long word, runs
    of stars and near-masks come back redacted, and the next call is served."""
    body = {"model": "huge", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {CONSUMER}"}
    answered = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers, timeout=60)
    assert answered.status_code == 400
    message = answered.json()["error"]["message"]
    assert OPENAI_KEY not in message and message.endswith(" key [redacted]")
    assert message.count("[redacted]") == 20_001  # (each a***tail a mask of the key's last four)
    masked = {"model": "masked", "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(gw.url + "/v1/chat/completions", json=masked, headers=headers, timeout=10).status_code == 401
