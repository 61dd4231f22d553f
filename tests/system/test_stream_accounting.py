"""What the record says of a stream's timing and tokens when the stream is not a plain
one: ``ttft_ms`` is the time to the first event sent to the client, not to a comment
(``: keep-alive``) before it; a client that leaves mid-stream, with
``abandoned_stream_drain_s`` set, is billed an estimate of all the text the provider
generated (what the client saw and what the drain read after it) when the provider never
reports its usage.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Proc
from tests.support.fake_provider import new_request_id, serve_gateway, usage_record
from tests.support.loopback_server import LoopbackServer, read_request

PAUSE_S = 0.5
DRAINED_EVENTS = 100
DRAINED_TEXT = "forty characters of text, all generated."  # 40 characters


def chunk(content: str | None = None, role: str | None = None) -> bytes:
    delta = {"role": role} if role else {"content": content}
    obj = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
           "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}  # fmt: skip
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


class StreamingProvider(LoopbackServer):
    """OpenAI chat streams, by the path's first segment:

    - ``/keepalive``: a comment at once, then after ``PAUSE_S`` a whole answer;
    - ``/unreported``: a first content event, then after ``PAUSE_S`` (the client has
      left by then) ``DRAINED_EVENTS`` more, then silence, never its usage or its end;
    - ``/ending``: the same, then its end (``[DONE]``), never its usage."""

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        path = head.split(b" ")[1]
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        if path.startswith(b"/keepalive/"):
            events = [b": keep-alive\n\n", chunk(role="assistant"), chunk("Hello."), b"data: [DONE]\n\n"]
        else:
            events = [chunk(role="assistant"), chunk("first words")]
        for i, event in enumerate(events):
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            if i == 0 and path.startswith(b"/keepalive/"):
                await asyncio.sleep(PAUSE_S)
        if path.startswith(b"/keepalive/"):
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return
        await asyncio.sleep(PAUSE_S)
        for _ in range(DRAINED_EVENTS):
            event = chunk(DRAINED_TEXT)
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
        if path.startswith(b"/ending/"):
            writer.write(b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n")
        await writer.drain()
        await reader.read()  # silent until the gateway gives up on it (or closes)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with StreamingProvider() as provider:
        config = f"""
server: {{abandoned_stream_drain_s: 2}}
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: keepalive, type: openai, baseUrl: "{provider.url}/keepalive/v1", apiTokens: [sk-up]}}
  - {{id: unreported, type: openai, baseUrl: "{provider.url}/unreported/v1", apiTokens: [sk-up]}}
  - {{id: ending, type: openai, baseUrl: "{provider.url}/ending/v1", apiTokens: [sk-up]}}
routes:
  - {{name: keepalive, path_prefix: /keepalive/v1/, provider: keepalive}}
  - {{name: unreported, path_prefix: /unreported/v1/, provider: unreported}}
  - {{name: ending, path_prefix: /ending/v1/, provider: ending}}
"""
        proc = serve_gateway(tmp_path_factory.mktemp("stream-accounting"), config)
        yield proc
        assert proc.stop() == 0


BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def test_ttft_is_the_first_event_not_a_keep_alive_comment_before_it(gw: Proc) -> None:
    rid = new_request_id()
    r = httpx.post(gw.url + "/keepalive/v1/chat/completions", json=BODY, headers={"x-request-id": rid}, timeout=10)
    assert r.status_code == 200 and "Hello." in r.text
    record = usage_record(gw, rid)
    # The comment came at once; the first event only after the provider's pause.
    assert record["ttft_ms"] >= PAUSE_S * 1000


@pytest.mark.parametrize("route", ["unreported", "ending"])
def test_a_drained_stream_without_usage_is_billed_all_the_text_read(gw: Proc, route: str) -> None:
    """The client leaves after the first words; the drain reads 100 more events (and
    the stream's end, or not before its time runs out), and the provider bills those too."""
    rid = new_request_id()
    with httpx.Client(timeout=10) as client:
        headers = {"x-request-id": rid}
        with client.stream("POST", gw.url + f"/{route}/v1/chat/completions", json=BODY, headers=headers) as r:
            seen = b""
            for piece in r.iter_raw():
                seen += piece
                if b"first words" in seen:
                    break
    record = usage_record(gw, rid, within=15)
    assert (record["status"], record["tokens_estimated"]) == (499, True)
    drained_tokens = DRAINED_EVENTS * len(DRAINED_TEXT) // 4
    assert record["output_tokens"] >= drained_tokens, record
