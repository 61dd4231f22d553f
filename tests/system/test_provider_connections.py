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
from concurrent.futures import ThreadPoolExecutor

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


class RestartingProvider(LoopbackServer):
    """Raw HTTP/1.1 on kept-alive connections, kept as long as the gateway likes, until
    ``restart`` is set: then every connection that answered before is closed when its
    next request comes, unanswered (as a restarted provider's, or one behind a load
    balancer that forgot its idle connections, are: the gateway learns it only when it
    writes). Requests whose text starts with ``hold`` are answered once ``HELD`` of
    them came, so each comes on a connection of its own. ``delivered`` holds the text
    of every request answered."""

    HELD = 3

    def __init__(self) -> None:
        super().__init__()
        self.delivered: list[str] = []
        self.restart = False
        self._held: list[asyncio.Future[None]] = []

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered = False
        while True:
            _, body = await read_request(reader)
            if answered and self.restart:
                return  # closed with the request unanswered
            text = json.loads(body)["messages"][0]["content"]
            if text.startswith("hold"):
                held = asyncio.get_running_loop().create_future()
                self._held.append(held)
                if len(self._held) == self.HELD:
                    for f in self._held:
                        f.set_result(None)
                    self._held.clear()
                await held
            self.delivered.append(text)
            writer.write(ANSWER)
            await writer.drain()
            answered = True


@pytest.fixture(scope="module")
def provider() -> Iterator[ClosingProvider]:
    with ClosingProvider() as fake:
        yield fake


@pytest.fixture(scope="module")
def restarting() -> Iterator[RestartingProvider]:
    with RestartingProvider() as fake:
        yield fake


@pytest.fixture(scope="module")
def gw(
    provider: ClosingProvider, restarting: RestartingProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proc]:
    config = f"""
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: plain, type: openai, baseUrl: "{provider.url}/v1", apiTokens: [sk-up]}}
  - {{id: restarting, type: openai, baseUrl: "{restarting.url}/v1", apiTokens: [sk-up]}}
  - id: retried
    type: openai
    baseUrl: "{provider.url}/v1"
    apiTokens: [sk-up]
    retryOnFailure: {{enabled: true, maxRetries: 1}}
routes:
  - {{name: plain, path_prefix: /plain/v1/, provider: plain}}
  - {{name: retried, path_prefix: /retried/v1/, provider: retried}}
  - {{name: restarting, path_prefix: /restarting/v1/, provider: restarting}}
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


def test_every_pooled_connection_the_provider_closed_is_dropped_for_a_fresh_one(
    gw: Proc, restarting: RestartingProvider
) -> None:
    """The gateway gave up after two stale connections in a row: with more in its pool,
    the client got a 502 for a provider that was up."""
    with ThreadPoolExecutor(RestartingProvider.HELD) as pool:
        held = list(pool.map(lambda i: call(gw, "restarting", f"hold {i}"), range(RestartingProvider.HELD)))
    assert [r.status_code for r in held] == [200] * RestartingProvider.HELD  # as many connections kept alive
    restarting.restart = True
    rid = new_request_id()
    r = call(gw, "restarting", "after the restart", rid)
    assert r.status_code == 200, r.text
    assert restarting.delivered.count("after the restart") == 1
    assert tried(usage_record(gw, rid)) == [("restarting", 200)]
