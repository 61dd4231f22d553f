"""A provider (and an MCP server, and a REST service behind a tool) that compresses its
answers. The gateway asks every provider for
``Accept-Encoding: identity`` (whatever the client asked for), so one that honours it
answers plainly. One that compresses anyway: an answer the gateway reads (JSON, one it
translates, an error) is decoded and sent on without its Content-Encoding, and so is a
model's stream, decoded as it comes (an MCP server's compressed stream is its failure);
past 100 to 1 either is refused, in bounded memory; a body the gateway only passes on
(a file's content) keeps its coding and its bytes, which is correct HTTP.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import zlib
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Proc
from tests.support.fake_provider import new_request_id, serve_gateway, usage_record
from tests.support.loopback_server import LoopbackServer, read_request
from tests.support.mcp_support import mcp_session, text_of

CHAT = json.dumps({
    "id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
}).encode()  # fmt: skip
MESSAGE = json.dumps({
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Paris."}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 13, "output_tokens": 5},
}).encode()  # fmt: skip
STREAM = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Paris."},"finish_reason":"stop"}]}\n\n'
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],'
    b'"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}\n\n'
    b"data: [DONE]\n\n"
)
ERROR = json.dumps({"error": {"message": "fake error 400", "type": "invalid_request_error", "code": None}}).encode()
FILE = b'{"custom_id": "a"}\n{"custom_id": "b"}\n'
MODELS = json.dumps({"object": "list", "data": [{"id": "gpt-listed", "object": "model", "created": 1}]})
PET = b'{"id": 1, "name": "Rex"}'
TOOLS = {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}


@functools.cache
def gzip_bomb(mib: int) -> bytes:
    """A chat answer whose text is ``mib`` MiB of one letter, gzipped: some 1000 to 1,
    128 KiB on the wire for 128 MiB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    head, tail = CHAT.split(b'"Paris."')
    parts = [packer.compress(head + b'"')]
    parts += [packer.compress(b"a" * (1 << 20)) for _ in range(mib)]
    return b"".join([*parts, packer.compress(b'"' + tail), packer.flush()])


def mcp_answer(body: bytes) -> tuple[str, bytes]:
    """An MCP server's answer to a JSON-RPC request: its tool list, as JSON; as an event
    stream when the method is ``stream``."""
    request = json.loads(body)
    answer = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": TOOLS}).encode()
    if request["method"] == "stream":
        return "text/event-stream", b"event: message\ndata: " + answer + b"\n\n"
    return "application/json", answer


class CompressingProvider(LoopbackServer):
    """Gzips every answer under ``/always/``, whatever the request's Accept-Encoding;
    under ``/honours/`` unless the request asks for ``identity``, as a server that takes
    no Accept-Encoding as any coding (RFC 9110 §12.5.3) does. Each request's
    Accept-Encoding values are kept in ``asked``."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[list[str]] = []

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, body = await read_request(reader)
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            asked = [v.strip() for k, _, v in (h.partition(":") for h in lines[1:]) if k.lower() == "accept-encoding"]
            self.asked.append(asked)
            compress = path.startswith("/always/") or asked != ["identity"]
            if path.endswith("/content"):
                status, ctype, plain = 200, "application/octet-stream", FILE
            elif path.endswith("/models"):
                status, ctype, plain = 200, "application/json", MODELS.encode()
            elif path.endswith("/mcp"):
                status, (ctype, plain) = 200, mcp_answer(body)
            elif path.endswith("/pet"):
                status, ctype, plain = 200, "application/json", PET
            elif b'"fail"' in body:
                status, ctype, plain = 400, "application/json", ERROR
            elif b'"stream":true' in body.replace(b" ", b""):
                status, ctype, plain = 200, "text/event-stream", STREAM
            else:
                status, ctype, plain = 200, "application/json", MESSAGE if path.endswith("/messages") else CHAT
            sent = gzip.compress(plain) if compress else plain
            coding = "content-encoding: gzip\r\n" if compress else ""
            if b'"bomb"' in body:
                sent = gzip_bomb(128)
            elif b'"garbled"' in body:
                sent = b"\x1f\x8b\x08\x00 not gzip after its first bytes"
            elif b'"squeezed"' in body:
                coding = "content-encoding: squeeze\r\n"
            head_out = f"HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\n{coding}content-length: {len(sent)}\r\n\r\n"
            writer.write(head_out.encode() + (b"" if method == "HEAD" else sent))
            await writer.drain()


@pytest.fixture(scope="module")
def provider() -> Iterator[CompressingProvider]:
    with CompressingProvider() as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(provider: CompressingProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    config = f"""
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: always, type: openai, baseUrl: "{provider.url}/always/v1", apiTokens: [sk-up]}}
  - {{id: honours, type: openai, baseUrl: "{provider.url}/honours/v1", apiTokens: [sk-up]}}
  - {{id: claude, type: claude, baseUrl: "{provider.url}/always", apiTokens: [sk-up]}}
mcp_servers:
  - {{name: squeezed, url: "{provider.url}/always/mcp"}}
  - name: squeezed-rest
    type: rest
    tools:
      - {{name: pet, inputSchema: {{type: object}}, request: {{url: "{provider.url}/always/rest/pet"}}}}
routes:
  - {{name: always, path_prefix: /always/v1/, provider: always}}
  - {{name: mcp, path_prefix: /mcp/squeezed, mcp_server: squeezed}}
  - {{name: mcp-rest, path_prefix: /mcp/rest, mcp_server: squeezed-rest}}
  - {{name: honours, path_prefix: /honours/v1/, provider: honours}}
  - {{name: claude, path_prefix: /claude/v1/, provider: claude}}
"""
    proc = serve_gateway(tmp_path_factory.mktemp("compressed-answers"), config)
    yield proc
    assert proc.stop() == 0


def recorded(gw: Proc, rid: str) -> tuple[int, str | None, bool]:
    """The status, reason and whether the tokens were estimated, of a call's record."""
    record = usage_record(gw, rid)
    return record["status"], record["reason"], record["tokens_estimated"]


def chat(stream: bool = False, text: str = "capital of France?") -> dict[str, object]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}], "stream": stream}


@pytest.mark.parametrize("route", ["/honours/v1", "/always/v1"])
def test_a_json_answer_reaches_the_client_plain_and_billed(gw: Proc, route: str) -> None:
    rid = new_request_id()
    r = httpx.post(gw.url + route + "/chat/completions", json=chat(), headers={"x-request-id": rid})
    assert r.status_code == 200, r.text
    assert "content-encoding" not in r.headers
    assert r.json()["choices"][0]["message"]["content"] == "Paris."
    record = usage_record(gw, rid)
    assert (record["input_tokens"], record["output_tokens"], record["tokens_estimated"]) == (11, 7, False)


def test_a_compressed_answer_past_100_to_1_is_refused_in_bounded_memory(gw: Proc) -> None:
    """Decoded whole, a gzip bomb (128 MiB from 128 KiB) would take the gateway's memory
    up by twice its decoded size, for each call at once."""
    before = gw.peak_memory_kib()
    rid = new_request_id()
    r = httpx.post(gw.url + "/always/v1/chat/completions", json=chat(text="bomb"), headers={"x-request-id": rid})
    assert (r.status_code, r.headers["x-tollway-reason"]) == (502, "ai-proxy.bad_upstream_response"), r.text[:200]
    assert "over 100 times" in r.json()["error"]["message"]
    grew_mib = (gw.peak_memory_kib() - before) / 1024
    assert grew_mib < 64, f"the gateway's peak memory grew by {grew_mib:.0f} MiB"
    assert recorded(gw, rid) == (502, "ai-proxy.bad_upstream_response", True)


def test_a_compressed_answer_to_translate_is_translated(gw: Proc) -> None:
    r = httpx.post(gw.url + "/claude/v1/chat/completions", json={**chat(), "model": "claude-sonnet-4-5"})
    assert r.status_code == 200, r.text
    assert "content-encoding" not in r.headers
    assert r.json()["choices"][0]["message"]["content"] == "Paris."


def test_a_compressed_error_reaches_the_client_plain(gw: Proc) -> None:
    r = httpx.post(gw.url + "/always/v1/chat/completions", json=chat(text="fail"))
    assert r.status_code == 400
    assert "content-encoding" not in r.headers
    assert r.json()["error"]["message"] == "fake error 400"


def test_a_stream_from_a_provider_that_honours_identity_is_relayed(gw: Proc, provider: CompressingProvider) -> None:
    r = httpx.post(gw.url + "/honours/v1/chat/completions", json=chat(stream=True))
    assert r.status_code == 200, r.text
    assert "content-encoding" not in r.headers
    assert "Paris." in r.text and r.text.rstrip().endswith("data: [DONE]")
    assert provider.asked[-1] == ["identity"]


def test_a_compressed_stream_is_decoded_and_relayed_plain(gw: Proc) -> None:
    rid = new_request_id()
    r = httpx.post(gw.url + "/always/v1/chat/completions", json=chat(stream=True), headers={"x-request-id": rid})
    assert r.status_code == 200, r.text
    assert "content-encoding" not in r.headers
    assert "Paris." in r.text and r.text.rstrip().endswith("data: [DONE]")
    record = usage_record(gw, rid)
    assert (record["status"], record["input_tokens"], record["output_tokens"], record["tokens_estimated"]) == (
        200,
        11,
        7,
        False,
    )


def test_a_stream_that_is_not_its_coding_breaks_off_as_the_providers_failure(gw: Proc) -> None:
    """As a stream whose provider breaks off: the client has an error event."""
    rid = new_request_id()
    body = chat(stream=True, text="garbled")
    r = httpx.post(gw.url + "/always/v1/chat/completions", json=body, headers={"x-request-id": rid})
    assert r.status_code == 200
    assert "content-encoding" not in r.headers
    assert r.text.startswith('data: {"error"') and "not valid gzip data" in r.text
    assert recorded(gw, rid) == (502, "ai-proxy.bad_upstream_response", True)


def test_a_compressed_stream_past_100_to_1_breaks_off_in_bounded_memory(gw: Proc) -> None:
    before = gw.peak_memory_kib()
    rid = new_request_id()
    body = chat(stream=True, text="bomb")
    r = httpx.post(gw.url + "/always/v1/chat/completions", json=body, headers={"x-request-id": rid})
    assert r.status_code == 200
    assert r.text.startswith('data: {"error"') and "over 100 times" in r.text, r.text[:300]
    grew_mib = (gw.peak_memory_kib() - before) / 1024
    assert grew_mib < 64, f"the gateway's peak memory grew by {grew_mib:.0f} MiB"
    assert recorded(gw, rid) == (502, "ai-proxy.bad_upstream_response", True)


def test_a_stream_in_a_coding_not_decoded_is_the_providers_failure_not_relayed(gw: Proc) -> None:
    rid = new_request_id()
    body = chat(stream=True, text="squeezed")
    r = httpx.post(gw.url + "/always/v1/chat/completions", json=body, headers={"x-request-id": rid})
    assert (r.status_code, r.headers["x-tollway-reason"]) == (502, "ai-proxy.bad_upstream_response"), r.text
    assert "content-encoding" not in r.headers
    assert "Content-Encoding 'squeeze'" in r.json()["error"]["message"]
    record = usage_record(gw, rid)
    assert (record["status"], record["reason"]) == (502, "ai-proxy.bad_upstream_response")


def test_the_client_cannot_ask_the_provider_for_a_coding(gw: Proc, provider: CompressingProvider) -> None:
    r = httpx.post(gw.url + "/honours/v1/chat/completions", json=chat(), headers={"accept-encoding": "gzip, br"})
    assert r.status_code == 200, r.text
    assert provider.asked[-1] == ["identity"]


def test_a_file_passed_on_keeps_its_coding_and_bytes(gw: Proc) -> None:
    with httpx.Client() as client:
        r = client.get(gw.url + "/always/v1/files/file-1/content")
        assert r.status_code == 200
        assert r.headers["content-encoding"] == "gzip"
        assert r.content == FILE  # httpx undid the gzip the provider applied


def test_a_head_asks_for_identity_too(gw: Proc, provider: CompressingProvider) -> None:
    """A HEAD goes through the other transport (aiohttp's), which asks the same."""
    r = httpx.head(gw.url + "/honours/v1/models", headers={"accept-encoding": "gzip"})
    assert r.status_code == 200
    assert provider.asked[-1] == ["identity"]


def test_a_compressed_model_list_is_read(gw: Proc) -> None:
    r = httpx.get(gw.url + "/always/v1/models")
    assert r.status_code == 200, r.text
    assert [m["id"] for m in r.json()["data"]] == ["gpt-listed"]


def mcp_call(gw: Proc, method: str, rid: str) -> httpx.Response:
    return httpx.post(
        gw.url + "/mcp/squeezed",
        json={"jsonrpc": "2.0", "id": 7, "method": method},
        headers={"accept": "application/json, text/event-stream", "x-request-id": rid},
    )


def test_a_compressed_answer_of_an_mcp_server_reaches_the_client_plain(gw: Proc) -> None:
    rid = new_request_id()
    r = mcp_call(gw, "tools/list", rid)
    assert r.status_code == 200, r.text
    assert "content-encoding" not in r.headers
    assert r.json() == {"jsonrpc": "2.0", "id": 7, "result": TOOLS}
    record = usage_record(gw, rid)
    assert (record["status"], record["reason"]) == (200, None)


def test_a_compressed_stream_of_an_mcp_server_is_its_failure_not_relayed(gw: Proc) -> None:
    rid = new_request_id()
    r = mcp_call(gw, "stream", rid)
    assert r.status_code == 200, r.text  # a JSON-RPC error, which MCP clients read
    assert "content-encoding" not in r.headers
    error = r.json()["error"]
    assert "squeezed" in error["message"] and "Content-Encoding" in error["message"]
    record = usage_record(gw, rid)
    assert (record["status"], record["reason"]) == (502, "mcp.upstream_failed")


async def test_a_compressed_answer_of_a_rest_tools_service_is_its_result(gw: Proc) -> None:
    async with mcp_session(gw.url + "/mcp/rest", None) as session:
        result = await session.call_tool("pet", {})
    assert not result.is_error, text_of(result)
    assert json.loads(text_of(result)) == {"id": 1, "name": "Rex"}
