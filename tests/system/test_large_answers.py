"""A provider or MCP server whose plain (not streamed) answer is larger than
``server.max_upstream_body_bytes``: the gateway stops reading at the bound instead of
holding the whole answer in memory (a hostile or broken server could send gigabytes).
The client gets a 502 saying so, the call is recorded, and the connection the answer
came on is closed, never reused for the next call.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Proc
from tests.support.fake_provider import new_request_id, serve_gateway, tried, usage_record
from tests.support.loopback_server import LoopbackServer, read_request

BOUND = 4096


def chat_answer(padding: int) -> bytes:
    return json.dumps({
        "id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x" * padding}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }).encode()  # fmt: skip


class LargeAnswers(LoopbackServer):
    """Raw HTTP/1.1 on kept-alive connections. A chat request's text says how large its
    answer is (``small``: well under ``BOUND``; ``large``: over it, with a
    Content-Length; ``chunked``: over it, in chunks and with no length); an MCP request
    under ``/mcp`` gets an answer over the bound. ``connections`` counts the
    connections opened."""

    def __init__(self) -> None:
        super().__init__()
        self.connections = 0

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        while True:
            head, body = await read_request(reader)
            path = head.split(b" ")[1]
            if path.endswith(b"/mcp"):
                request = json.loads(body)
                result = {"tools": [{"name": "t" * BOUND, "inputSchema": {"type": "object"}}]}
                plain = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}).encode()
                text = "large"
            else:
                text = json.loads(body)["messages"][0]["content"]
                plain = chat_answer(BOUND if text != "small" else 10)
            if text == "chunked":
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
                for start in range(0, len(plain), 1000):
                    piece = plain[start : start + 1000]
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                writer.write(b"0\r\n\r\n")
            else:
                head_out = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                writer.write(head_out % len(plain) + plain)
            await writer.drain()


@pytest.fixture(scope="module")
def server() -> Iterator[LargeAnswers]:
    with LargeAnswers() as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(server: LargeAnswers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    config = f"""
server: {{max_upstream_body_bytes: {BOUND}}}
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: big, type: openai, baseUrl: "{server.url}/v1", apiTokens: [sk-up]}}
mcp_servers:
  - {{name: wordy, url: "{server.url}/mcp"}}
routes:
  - {{name: chat, path_prefix: /v1/, provider: big}}
  - {{name: mcp, path_prefix: /mcp, mcp_server: wordy}}
"""
    proc = serve_gateway(tmp_path_factory.mktemp("large-answers"), config)
    yield proc
    assert proc.stop() == 0


def chat(gw: Proc, text: str, rid: str | None = None) -> httpx.Response:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
    return httpx.post(gw.url + "/v1/chat/completions", json=body, headers={"x-request-id": rid or new_request_id()})


@pytest.mark.parametrize("text", ["large", "chunked"])
def test_a_provider_answer_past_the_bound_is_a_502_recorded_on_a_closed_connection(
    gw: Proc, server: LargeAnswers, text: str
) -> None:
    assert chat(gw, "small").status_code == 200  # a kept-alive connection to the provider
    opened = server.connections
    rid = new_request_id()
    r = chat(gw, text, rid)
    assert r.status_code == 502, r.text
    assert r.headers["x-tollway-reason"] == "ai-proxy.bad_upstream_response"
    assert f"answer larger than {BOUND} bytes" in r.json()["error"]["message"]
    record = usage_record(gw, rid)
    assert (record["status"], record["reason"]) == (502, "ai-proxy.bad_upstream_response")
    assert tried(record) == [("big", 200)]  # the provider answered: it is the answer that was refused
    assert chat(gw, "small").status_code == 200
    assert server.connections == opened + 1  # the refused answer's connection was not reused


def test_an_mcp_servers_answer_past_the_bound_is_its_failure(gw: Proc) -> None:
    rid = new_request_id()
    r = httpx.post(
        gw.url + "/mcp",
        json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
        headers={"accept": "application/json, text/event-stream", "x-request-id": rid},
    )
    assert r.status_code == 200, r.text  # a JSON-RPC error, which MCP clients read
    error = r.json()["error"]
    assert "wordy" in error["message"] and f"answer larger than {BOUND} bytes" in error["message"]
    record = usage_record(gw, rid)
    assert (record["status"], record["reason"]) == (502, "mcp.upstream_failed")
