"""The chain runner (chain.py, SPEC §2 `plugins`, STYLE "the chain is the spine").

Request hooks run in order; response hooks in reverse; a reply or an error short-circuits;
``done`` always runs; stream events pass the plugins in reverse and may be dropped or held.
A plugin's bug costs what its ``failure_mode`` says, through the gateway in-process. The
order a snapshot builds and which plugin object serves a request are tested in
tests/unit/gateway/test_snapshot.py. All without sockets.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from tests.support.recorder_support import calls, recorder
from tollway.chain import Chain, FailureLog
from tollway.config.load import load_config_text
from tollway.errors import GatewayError
from tollway.plugin import Plugin, PluginConfig
from tollway.plugins.registry import PLUGIN_MODELS
from tollway.protocols.sse import SseEvent
from tollway.runtime.config_source import ConfigSource
from tollway.runtime.root import Runtime
from tollway.testing.harness import make_exchange
from tollway.usage.access_log import AccessLog


def chain_of_plugins(*plugins: Plugin[Any]) -> Chain:
    return Chain(cast("list[Plugin[PluginConfig]]", list(plugins)), FailureLog())


# --- the runner -----------------------------------------------------------------------------


async def test_request_hooks_run_in_order_and_response_hooks_in_reverse(registered: None) -> None:
    chain = chain_of_plugins(recorder("a"), recorder("b"), recorder("c"))
    ex = make_exchange("POST", "/v1/x", body=b"{}")
    assert await chain.request_headers(ex) is None
    assert await chain.request_body(ex) is None
    headers: list[tuple[str, str]] = []
    await chain.response_headers(ex, 200, headers)
    body = await chain.response_body(ex, b"answer")
    await chain.done(ex)
    assert calls(ex) == [
        "a.headers", "b.headers", "c.headers",
        "a.body", "b.body", "c.body",
        "c.resp_headers", "b.resp_headers", "a.resp_headers",
        "c.resp_body", "b.resp_body", "a.resp_body",
        "c.done", "b.done", "a.done",
    ]  # fmt: skip
    assert body == b"answer+c+b+a"
    assert [name for name, _ in headers] == ["x-seen-c", "x-seen-b", "x-seen-a"]


async def test_a_reply_short_circuits_the_request_phase(registered: None) -> None:
    chain = chain_of_plugins(recorder("a"), recorder("b", reply_with=418), recorder("c"))
    ex = make_exchange()
    reply = await chain.request_headers(ex)
    assert reply is not None and (reply.status, reply.body) == (418, b"b")
    assert calls(ex) == ["a.headers", "b.headers"]


async def test_an_error_short_circuits_and_done_still_runs_everywhere(registered: None) -> None:
    chain = chain_of_plugins(recorder("a"), recorder("b", refuse=True), recorder("c"))
    ex = make_exchange()
    with pytest.raises(GatewayError) as raised:
        await chain.request_headers(ex)
    assert raised.value.reason == "b.refused"
    await chain.done(ex)
    assert calls(ex) == ["a.headers", "b.headers", "c.done", "b.done", "a.done"]


async def test_a_done_hook_that_raises_does_not_stop_the_others(registered: None) -> None:
    chain = chain_of_plugins(recorder("a"), recorder("b", crash=True), recorder("c"))
    ex = make_exchange()
    await chain.done(ex)
    assert calls(ex) == ["c.done", "b.done", "a.done"]


async def test_stream_events_pass_plugins_in_reverse_and_may_be_dropped(registered: None) -> None:
    chain = chain_of_plugins(recorder("a"), recorder("b"), recorder("c"))
    ex = make_exchange()
    out = chain.stream_events(ex, [SseEvent.build("e")])
    assert [e.data for e in out] == ["e>c>b>a"]
    dropping = chain_of_plugins(recorder("a"), recorder("b", drop_events=True), recorder("c"))
    ex = make_exchange()
    assert dropping.stream_events(ex, [SseEvent.build("e")]) == []
    assert calls(ex) == ["c.event", "b.event"]


async def test_events_flushed_at_the_end_still_pass_the_plugins_after(registered: None) -> None:
    chain = chain_of_plugins(recorder("a"), recorder("b", hold_events=True), recorder("c"))
    ex = make_exchange()
    assert chain.stream_events(ex, [SseEvent.build("e")]) == []
    flushed = chain.stream_end(ex)
    assert [e.data for e in flushed] == ["e>c>a"]


# --- failure_mode, through the gateway in-process ----------------------------------------

FAILING = """
storage: {{database: "sqlite:///./tollway.db"}}
providers: [{{id: mock, type: mock}}]
routes: [{{name: chat, path_prefix: /v1/, provider: mock}}]
plugins:
  - {{name: recorder, defaultConfig: {{tag: buggy, crash: true}}{mode}}}
"""


async def _status_with(failure_mode: str, tmp_path: Path) -> httpx.Response:
    text = FAILING.format(mode=f", failure_mode: {failure_mode}" if failure_mode else "")
    loaded = load_config_text(text, plugins=PLUGIN_MODELS, base_dir=tmp_path)
    runtime = Runtime(ConfigSource(None, text), loaded, access_log=AccessLog(io.StringIO()))
    await runtime.start()
    try:
        transport = httpx.ASGITransport(app=runtime.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.local") as http:
            return await http.get("/v1/models")
    finally:
        await runtime.stop()


async def test_a_plugin_bug_costs_one_request_a_5xx_when_failure_mode_is_closed(
    registered: None, tmp_path: Path
) -> None:
    for mode in ("", "closed"):
        r = await _status_with(mode, tmp_path)
        assert r.status_code == 500, mode
        assert r.headers["x-tollway-reason"] == "recorder.internal_error"
        assert r.headers["x-request-id"]
        assert "error" in r.json()


async def test_failure_mode_open_lets_the_request_through_a_plugin_bug(registered: None, tmp_path: Path) -> None:
    r = await _status_with("open", tmp_path)
    assert r.status_code == 200
