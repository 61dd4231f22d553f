"""Higress provider fields that Tollway acts on (SPEC §2 providers, "none passes
silently"): ``customSettings``, ``geminiSafetySetting``, ``protocol: original``,
``firstByteTimeout``, ``retryOnFailure.retryTimeout``; and the ones it only accepts,
each warned about when the config is loaded (``failover``, ``qwenEnableCompatible:
false``, ai-statistics' span fields). Through a gateway in this process, against a
recording upstream."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from tollway.runtime.config_source import load_text
from tollway.testing.gateway import GatewayUnderTest

OPENAI_ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}
GEMINI_ANSWER = {
    "candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
    "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4},
}


@dataclass
class Recorder:
    """An upstream that records each request and answers in the shape its path asks for;
    ``status`` and ``delay_s`` script every answer."""

    seen: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    delay_s: float = 0.0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        self.seen.append((scope["path"], orjson.loads(body) if body else {}))
        await asyncio.sleep(self.delay_s)
        answer: dict[str, Any] = GEMINI_ANSWER if "generateContent" in scope["path"] else OPENAI_ANSWER
        if self.status != 200:
            answer = {"error": {"message": "busy", "type": "server_error"}}
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": orjson.dumps(answer)})


def gateway(provider: dict[str, Any], upstream: Recorder | None = None) -> GatewayUnderTest:
    config = {
        "providers": [{"id": "p", "apiTokens": ["sk-1", "sk-2"], "baseUrl": "http://up.test/v1", **provider}],
        "routes": [{"name": "v1", "path_prefix": "/v1/", "provider": "p"}],
    }
    return GatewayUnderTest(orjson.dumps(config).decode(), upstream=upstream or Recorder())


async def chat(gw: GatewayUnderTest, **extra: Any) -> httpx.Response:
    body = {"model": "m", "messages": [{"role": "user", "content": "hello"}], **extra}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://gw") as client:
        return await client.post("/v1/chat/completions", json=body)


async def test_custom_settings_fill_or_force_parameters_on_an_openai_provider() -> None:
    up = Recorder()
    settings = [
        {"name": "temperature", "value": 0.1},  # auto, overwrite: forced
        {"name": "max_tokens", "value": 99, "overwrite": False},  # kept when the request has one
        {"name": "seed", "value": 7, "mode": "raw"},
    ]
    gw = gateway({"type": "openai", "customSettings": settings}, up)
    assert (await chat(gw, temperature=0.9, max_tokens=5)).status_code == 200
    assert (await chat(gw)).status_code == 200
    (_, given), (_, filled) = up.seen
    assert (given["temperature"], given["max_tokens"], given["seed"]) == (0.1, 5, 7)
    assert (filled["temperature"], filled["max_tokens"], filled["seed"]) == (0.1, 99, 7)


async def test_auto_settings_are_translated_and_raw_ones_set_as_they_stand_with_gemini_safety() -> None:
    up = Recorder()
    gw = gateway(
        {
            "type": "gemini",
            "customSettings": [
                {"name": "max_tokens", "value": 64},
                {"name": "cachedContent", "value": "cachedContents/abc", "mode": "raw"},
            ],
            "geminiSafetySetting": {"HARM_CATEGORY_HARASSMENT": "BLOCK_NONE"},
        },
        up,
    )
    r = await chat(gw)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "hi"
    path, body = up.seen[0]
    assert path.endswith("/models/m:generateContent")
    assert body["generationConfig"]["maxOutputTokens"] == 64
    assert body["cachedContent"] == "cachedContents/abc"
    assert body["safetySettings"] == [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]


async def test_protocol_original_sends_the_request_as_the_client_sent_it() -> None:
    up = Recorder()
    gw = gateway({"type": "claude", "protocol": "original"}, up)
    r = await chat(gw)
    assert r.status_code == 200 and r.json()["object"] == "chat.completion"
    path, body = up.seen[0]
    assert path == "/v1/chat/completions"
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    translated = Recorder()
    await chat(gateway({"type": "claude"}, translated))
    assert translated.seen[0][0] == "/v1/messages"


async def test_first_byte_timeout_bounds_streamed_calls_only() -> None:
    up = Recorder(delay_s=0.3)
    gw = gateway({"type": "openai", "firstByteTimeout": 100}, up)
    streamed = await chat(gw, stream=True)
    assert streamed.status_code == 504
    assert streamed.headers["x-tollway-reason"] == "ai-proxy.upstream_timeout"
    assert (await chat(gw)).status_code == 200


async def test_retry_timeout_ends_the_retries() -> None:
    def retrying(timeout_ms: int) -> dict[str, Any]:
        return {"type": "openai", "retryOnFailure": {"enabled": True, "maxRetries": 5, "retryTimeout": timeout_ms}}

    bounded = Recorder(status=503, delay_s=0.3)
    gw = gateway(retrying(500), bounded)
    assert (await chat(gw)).status_code == 503
    assert 1 <= len(gw.calls[-1].attempts) <= 2
    unbounded = Recorder(status=503, delay_s=0.01)
    gw = gateway(retrying(60_000), unbounded)
    assert (await chat(gw)).status_code == 503
    assert len(gw.calls[-1].attempts) == 6


def test_fields_accepted_without_effect_are_warned_about() -> None:
    text = """
providers:
  - {id: q, type: qwen, qwenEnableCompatible: false}
  - {id: o, type: openai, failover: {enabled: true, healthCheckModel: gpt-4o-mini}}
  - {id: fine, type: qwen, qwenEnableCompatible: true}
routes: [{name: v1, path_prefix: /v1/, provider: o}]
plugins:
  - name: ai-statistics
    defaultConfig:
      attributes: [{key: team, value_source: request_header, value: x-team, apply_to_span: true}]
    matchRules:
      - ingress: [v1]
        config:
          attributes: [{key: t, value_source: fixed_value, value: x, trace_span_key: team.name}]
"""
    warnings = load_text(text, Path(".")).warnings
    assert [w.split(":")[0] for w in warnings] == [
        "providers[0].qwenEnableCompatible",
        "providers[1].failover",
        "plugins[0].matchRules[0].config.attributes[0].trace_span_key",
    ]
    assert all("ignored" in w for w in warnings)


def test_a_custom_setting_a_translating_provider_cannot_send_is_a_config_error(tmp_path: Path) -> None:
    """``presence_penalty`` set for a Claude provider passed ``check``, then every chat
    call was a 400 naming a field the client never sent."""
    from tollway.cli.main import main

    config = tmp_path / "tollway.yaml"
    config.write_text(
        "providers:\n  - {id: c, type: claude, apiTokens: [k], customSettings: "
        "[{name: presence_penalty, value: 0.5}, {name: temperature, value: 0.2}]}\n"
        "  - {id: o, type: openai, apiTokens: [k], customSettings: [{name: presence_penalty, value: 0.5}]}\n"
        "routes: [{name: r, path_prefix: /v1/, provider: c}]\n"
    )
    assert main(["check", "-c", str(config)]) == 2
    config.write_text(config.read_text().replace("{name: presence_penalty, value: 0.5}, {", "{", 1))
    assert main(["check", "-c", str(config)]) == 0  # (temperature goes; OpenAI takes presence_penalty)
