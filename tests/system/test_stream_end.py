"""A stream whose terminal event reached the client is recorded with the provider's status
(SPEC §9), whatever the client does after it: the OpenAI SDK closes its connection on
``data: [DONE]``, often before the provider has ended its body. A client that leaves
before the terminal event is still 499.

The provider here sends a whole OpenAI stream (usage chunk and ``[DONE]`` included),
then holds its body open for a second before ending it, as a slow proxy or a provider
finishing its bookkeeping does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import Proc
from tests.support.fake_provider import new_request_id, serve_gateway, usage_record
from tests.support.loopback_server import LoopbackServer, read_request

TRANSCRIPT = Path(__file__).resolve().parents[1] / "fixtures" / "transcripts" / "openai" / "chat_text.stream.sse"
HOLD_S = 1.0


class LingeringProvider(LoopbackServer):
    """Answers every request with the transcript's stream, then waits ``HOLD_S`` before
    the chunked body's last chunk; with ``x-hold: before-done`` it waits before the
    stream's last event (``[DONE]``) instead."""

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        before_done = b"x-hold: before-done" in head.lower()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        events = [e + b"\n\n" for e in TRANSCRIPT.read_bytes().split(b"\n\n") if e.strip()]
        for i, event in enumerate(events):
            if before_done and i == len(events) - 1:
                await writer.drain()
                await asyncio.sleep(HOLD_S)
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
        await writer.drain()
        if not before_done:
            await asyncio.sleep(HOLD_S)
        writer.write(b"0\r\n\r\n")
        await writer.drain()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with LingeringProvider() as provider:
        config = f"""
storage: {{database: "sqlite:///./tollway.db"}}
providers: [{{id: up, type: openai, baseUrl: "{provider.url}/v1", apiTokens: [sk-up]}}]
routes: [{{name: chat, path_prefix: /v1/, provider: up}}]
"""
        proc = serve_gateway(tmp_path_factory.mktemp("stream-end"), config)
        yield proc
        assert proc.stop() == 0


def test_a_client_closing_on_done_is_recorded_with_the_providers_status_and_usage(gw: Proc) -> None:
    rid = new_request_id()
    with openai.OpenAI(base_url=gw.url + "/v1", api_key="k", max_retries=0, timeout=10) as sdk:
        stream = sdk.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-request-id": rid},
        )
        chunks = list(stream)  # ends at [DONE]; the SDK closes the response there
    assert chunks[-1].usage is not None
    record = usage_record(gw, rid, within=HOLD_S + 5)
    assert (record["status"], record["reason"]) == (200, None)
    assert (record["input_tokens"], record["output_tokens"]) == (
        chunks[-1].usage.prompt_tokens,
        chunks[-1].usage.completion_tokens,
    )
    assert record["tokens_estimated"] is False


def test_a_client_leaving_before_done_is_still_499(gw: Proc) -> None:
    rid = new_request_id()
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.Client(timeout=10) as client:
        headers = {"x-request-id": rid, "x-hold": "before-done"}
        with client.stream("POST", gw.url + "/v1/chat/completions", json=body, headers=headers) as r:
            assert next(r.iter_lines()).startswith("data: ")
    record = usage_record(gw, rid, within=HOLD_S + 5)
    assert (record["status"], record["reason"]) == (499, "gateway.client_closed")
