"""A kept-alive provider connection that closes. One the provider closed while it sat
idle in the pool (its idle timeout) is stale: the request goes on a fresh connection and
the client never knows. One the provider closes after it read the request and worked on
it is the provider's failure: 502 "provider closed the connection before answering",
never sent again behind the record's back (the provider may bill every delivery); a
retry is retryOnFailure's to make, and is an attempt of the record.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Proc
from tests.support.fake_provider import new_request_id, serve_gateway, tried, usage_record
from tests.support.loopback_server import LoopbackServer, read_request

WORK_S = 1.0
IDLE_S = 0.5
CHAT = json.dumps({
    "id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}).encode()  # fmt: skip
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(CHAT), CHAT)


class ClosingProvider(LoopbackServer):
    """Raw HTTP/1.1 on kept-alive connections: answers each request, and closes a
    connection idle for ``IDLE_S``; but a request whose text starts with ``drop`` on a
    connection that answered before it reads, works on for ``WORK_S``, and closes the
    connection unanswered. ``delivered`` holds the text of every request read."""

    def __init__(self) -> None:
        super().__init__()
        self.delivered: list[str] = []

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered = 0
        while True:
            try:
                async with asyncio.timeout(IDLE_S if answered else None):
                    _, body = await read_request(reader)
            except TimeoutError:
                return  # idle too long: closed (LoopbackServer closes the writer)
            text = json.loads(body)["messages"][0]["content"]
            self.delivered.append(text)
            if text.startswith("drop") and answered:
                await asyncio.sleep(WORK_S)
                return
            writer.write(ANSWER)
            await writer.drain()
            answered += 1


@pytest.fixture(scope="module")
def provider() -> Iterator[ClosingProvider]:
    with ClosingProvider() as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(provider: ClosingProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    config = f"""
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: plain, type: openai, baseUrl: "{provider.url}/v1", apiTokens: [sk-up]}}
  - id: retried
    type: openai
    baseUrl: "{provider.url}/v1"
    apiTokens: [sk-up]
    retryOnFailure: {{enabled: true, maxRetries: 1}}
routes:
  - {{name: plain, path_prefix: /plain/v1/, provider: plain}}
  - {{name: retried, path_prefix: /retried/v1/, provider: retried}}
"""
    proc = serve_gateway(tmp_path_factory.mktemp("provider-connections"), config)
    yield proc
    assert proc.stop() == 0


def call(gw: Proc, route: str, text: str, rid: str | None = None) -> httpx.Response:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
    headers = {"x-request-id": rid} if rid else {}
    return httpx.post(f"{gw.url}/{route}/v1/chat/completions", json=body, headers=headers, timeout=10)


def test_a_request_the_provider_read_and_dropped_is_not_sent_again(gw: Proc, provider: ClosingProvider) -> None:
    assert call(gw, "plain", "first").status_code == 200  # the connection is kept alive
    rid = new_request_id()
    r = call(gw, "plain", "drop once", rid)
    assert r.status_code == 502, r.text
    assert r.headers["x-tollway-reason"] == "ai-proxy.bad_upstream_response"
    assert "closed the connection before answering" in r.json()["error"]["message"]
    assert provider.delivered.count("drop once") == 1
    assert tried(usage_record(gw, rid)) == [("plain", 502)]


def test_a_retry_of_such_a_request_is_retry_on_failures_and_recorded(gw: Proc, provider: ClosingProvider) -> None:
    assert call(gw, "retried", "warm-up").status_code == 200
    rid = new_request_id()
    r = call(gw, "retried", "drop, then retry", rid)
    assert r.status_code == 200, r.text  # the retry went on a fresh connection: its first request
    assert provider.delivered.count("drop, then retry") == 2
    assert tried(usage_record(gw, rid)) == [("retried", 502), ("retried", 200)]


def test_a_connection_the_provider_closed_while_idle_is_not_the_clients_problem(
    gw: Proc, provider: ClosingProvider
) -> None:
    assert call(gw, "plain", "before").status_code == 200
    time.sleep(IDLE_S)  # about when the provider closes the idle connection
    rid = new_request_id()
    r = call(gw, "plain", "after", rid)
    assert r.status_code == 200, r.text
    assert provider.delivered.count("after") == 1
    assert tried(usage_record(gw, rid)) == [("plain", 200)]
