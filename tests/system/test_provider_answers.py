"""Provider answers that are odd but not broken are relayed, not turned into a 502: a
HEAD's answer (no body, by definition), and an answer whose text ends in half a
surrogate pair (a model cut off in the middle of an emoji: JSON allows the escape)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Proc
from tests.support.fake_provider import serve_gateway, usage_record
from tests.support.loopback_server import LoopbackServer, read_request

# A chat answer whose text ends in a lone high surrogate, as the bytes a provider sends.
HALF_EMOJI = (
    b'{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"half \\ud83d"},"finish_reason":"length"}],'
    b'"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}'
)
HALF_EMOJI_CLAUDE = (
    b'{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5",'
    b'"content":[{"type":"text","text":"half \\ud83d"}],"stop_reason":"max_tokens","stop_sequence":null,'
    b'"usage":{"input_tokens":11,"output_tokens":7}}'
)


class OddProvider(LoopbackServer):
    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, _ = await read_request(reader)
            method, path = head.decode("latin-1").split(" ")[:2]
            body = HALF_EMOJI_CLAUDE if path.endswith("/messages") else HALF_EMOJI
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body))
            if method != "HEAD":
                writer.write(body)
            await writer.drain()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with OddProvider() as provider:
        config = f"""
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: openai, type: openai, baseUrl: "{provider.url}/v1", apiTokens: [sk-openai]}}
  - {{id: claude, type: claude, baseUrl: "{provider.url}", apiTokens: [sk-claude]}}
routes:
  - {{name: openai, path_prefix: /v1/, provider: openai}}
  - {{name: claude, path_prefix: /claude/v1/, provider: claude}}
"""
        proc = serve_gateway(tmp_path_factory.mktemp("provider-answers"), config)
        yield proc
        assert proc.stop() == 0


@pytest.mark.parametrize("path", ["/v1/models", "/v1/chat/completions"])
def test_a_head_is_answered_as_the_provider_answered_it(gw: Proc, path: str) -> None:
    r = httpx.head(gw.url + path)
    assert r.status_code == 200 and r.headers.get("x-tollway-reason") is None
    assert r.headers["content-type"] == "application/json"
    # What a GET would get (a HEAD's answer has no body to count: a provider's says it).
    assert r.headers["content-length"] == str(len(httpx.get(gw.url + path).content))


@pytest.mark.parametrize("route", ["/v1", "/claude/v1"])
def test_an_answer_cut_in_the_middle_of_an_emoji_is_relayed_and_billed(gw: Proc, route: str) -> None:
    rid = f"half-emoji{route.replace('/', '-')}"
    r = httpx.post(
        gw.url + route + "/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "an emoji please"}]},
        headers={"x-request-id": rid},
    )
    assert r.status_code == 200, r.text
    assert json.loads(r.content)["choices"][0]["message"]["content"].startswith("half ")
    record = usage_record(gw, rid)
    assert (record["status"], record["input_tokens"], record["output_tokens"]) == (200, 11, 7)
    assert record["tokens_estimated"] is False
