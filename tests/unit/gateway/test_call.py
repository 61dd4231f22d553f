"""One call through the gateway (gateway/call.py), in this process: the gateway alone
drives the response phase, for plugin replies, provider answers, model listings and
streams alike; a failure after the answer began ends the stream with an error event in
the client's dialect; the provider's stream is always released."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tollway.exchange import Exchange, Reply, StateKey
from tollway.plugin import Phase, Plugin, PluginConfig
from tollway.plugins.registry import PLUGIN_MODELS, REGISTRY
from tollway.protocols.sse import SseEvent
from tollway.testing.gateway import GatewayUnderTest

SEEN: StateKey[list[str]] = StateKey("test.seen")


class ProbeConfig(PluginConfig):
    crash_in: str | None = None  # the hook that raises an unexpected error
    answer: bool = False  # answer every request itself


class Probe(Plugin[ProbeConfig]):
    """Notes each hook it sees on the exchange; crashes in one hook when asked."""

    name = "probe"
    phase = Phase.UNSPECIFIED
    config_model = ProbeConfig

    def _saw(self, ex: Exchange, hook: str) -> None:
        seen = ex.get(SEEN)
        if seen is None:
            seen = []
            ex.put(SEEN, seen)
        seen.append(hook)
        if self.config.crash_in == hook:
            raise RuntimeError(f"probe crashed in {hook}")

    async def request_body(self, ex: Exchange) -> Reply | None:
        self._saw(ex, "request_body")
        if self.config.answer:
            return Reply(200, [("content-type", "text/plain")], b"from the plugin")
        return None

    async def response_headers(self, ex: Exchange, status: int, headers: list[tuple[str, str]]) -> None:
        self._saw(ex, "response_headers")
        headers.append(("x-probe", "seen"))

    async def response_body(self, ex: Exchange, body: bytes) -> bytes:
        self._saw(ex, "response_body")
        return body

    def stream_event(self, ex: Exchange, event: SseEvent) -> list[SseEvent]:
        self._saw(ex, "stream_event")
        return [event]

    def stream_end(self, ex: Exchange) -> list[SseEvent]:
        self._saw(ex, "stream_end")
        return []


@pytest.fixture(autouse=True)
def probe_registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(REGISTRY, Probe.name, Probe)
    monkeypatch.setitem(PLUGIN_MODELS, Probe.name, ProbeConfig)
    yield


def config(probe: dict[str, Any] | None = None, failure_mode: str | None = None) -> str:
    entry: dict[str, Any] = {"name": "probe", "defaultConfig": probe or {}}
    if failure_mode:
        entry["failure_mode"] = failure_mode
    return orjson.dumps(
        {
            "providers": [{"id": "mock", "type": "mock", "modelMapping": {"listed-model": "gpt-4o-mini"}}],
            "routes": [{"name": "v1", "path_prefix": "/v1/", "provider": "mock"}],
            "plugins": [entry],
        }
    ).decode()


CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]}


async def call(gw: GatewayUnderTest, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://gw") as client:
        return await client.request(method, path, json=body)


def seen(gw: GatewayUnderTest) -> list[str]:
    return gw.calls[-1].get(SEEN) or []


async def test_the_model_listing_passes_the_response_hooks() -> None:
    gw = GatewayUnderTest(config())
    r = await call(gw, "GET", "/v1/models")
    assert r.status_code == 200
    assert "listed-model" in [m["id"] for m in r.json()["data"]]
    assert r.headers["x-probe"] == "seen"
    assert seen(gw) == ["request_body", "response_headers", "response_body"]


async def test_a_plugin_reply_and_a_provider_answer_pass_the_same_response_hooks() -> None:
    gw = GatewayUnderTest(config({"answer": True}))
    r = await call(gw, "POST", "/v1/chat/completions", CHAT)
    assert (r.status_code, r.text, r.headers["x-probe"]) == (200, "from the plugin", "seen")
    assert seen(gw) == ["request_body", "response_headers", "response_body"]
    gw = GatewayUnderTest(config())
    r = await call(gw, "POST", "/v1/chat/completions", CHAT)
    assert r.status_code == 200 and r.json()["object"] == "chat.completion"
    assert r.headers["x-probe"] == "seen"
    assert seen(gw) == ["request_body", "response_headers", "response_body"]


async def test_a_stream_passes_each_event_and_its_end_through_the_plugins() -> None:
    gw = GatewayUnderTest(config())
    r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "stream": True})
    assert r.status_code == 200 and r.headers["x-probe"] == "seen"
    assert r.text.rstrip().endswith("data: [DONE]")
    hooks = seen(gw)
    assert hooks[:2] == ["request_body", "response_headers"] and hooks[-1] == "stream_end"
    assert hooks.count("stream_event") >= 3
    ex = gw.calls[-1]
    assert ex.status == 200 and ex.usage.reported and ex.ttft_ms is not None


@pytest.mark.parametrize("hook", ["stream_event", "stream_end"])
async def test_a_plugin_bug_mid_stream_ends_the_stream_with_an_error_event(hook: str) -> None:
    gw = GatewayUnderTest(config({"crash_in": hook}))
    r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "stream": True})
    assert r.status_code == 200  # the answer had begun
    last = [line for line in r.text.splitlines() if line.startswith("data:")][-1]
    error = orjson.loads(last.removeprefix("data:"))["error"]
    assert "probe" in error["message"] and error["code"] == "internal_error"
    ex = gw.calls[-1]
    assert (ex.status, ex.reason) == (500, "probe.internal_error")


async def test_the_error_event_speaks_the_clients_dialect() -> None:
    gw = GatewayUnderTest(config({"crash_in": "stream_end"}))
    body = {"model": "claude-3-5-haiku-latest", "max_tokens": 50, "stream": True,
            "messages": [{"role": "user", "content": "Say hello"}]}  # fmt: skip
    r = await call(gw, "POST", "/v1/messages", body)
    assert "event: error" in r.text
    assert '"type":"error"' in r.text.replace(" ", "")
    assert gw.calls[-1].status == 500


@pytest.mark.parametrize("hook", ["stream_event", "stream_end"])
async def test_failure_mode_open_lets_the_stream_finish(hook: str) -> None:
    gw = GatewayUnderTest(config({"crash_in": hook}, failure_mode="open"))
    r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "stream": True})
    assert r.text.rstrip().endswith("data: [DONE]")
    assert gw.calls[-1].status == 200 and gw.calls[-1].reason is None


async def test_a_refusal_before_the_stream_starts_is_a_whole_error_answer_and_releases_the_stream() -> None:
    released: list[bool] = []

    async def upstream(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        try:
            while True:  # a stream that never ends unless the gateway lets go of it
                await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
                await asyncio.sleep(0.01)
        finally:
            released.append(True)

    gw = GatewayUnderTest(config({"crash_in": "response_headers"}), upstream=upstream)
    r = await call(gw, "POST", "/v1/chat/completions", {**CHAT, "stream": True})
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error"
    assert r.headers["x-tollway-reason"] == "probe.internal_error"
    for _ in range(50):
        if released:
            break
        await asyncio.sleep(0.01)
    assert released, "the provider's stream was never released"
