"""The plugin test harness (testing/harness.py) itself: it builds an exchange as the gateway
would, runs a terminal plugin against the in-memory mock, and hides the body from the
request-headers hook."""

from __future__ import annotations

from tests.support.recorder_support import Recorder, RecorderConfig, recorder
from tollway.errors import GatewayError
from tollway.exchange import Exchange, Reply
from tollway.testing.harness import make_exchange, make_plugin, make_services, run_request


async def test_the_harness_builds_an_exchange_as_the_gateway_would() -> None:
    ex = make_exchange("post", "/v1/x", [("Host", "API.example.com:8443"), ("X-A", "1")], "q=a+b&k=%2F", b"{}")
    req = ex.request
    assert (req.method, req.path, req.host, req.body) == ("POST", "/v1/x", "api.example.com", b"{}")
    assert req.headers.get("x-a") == "1"
    assert req.query_params == [("q", "a b"), ("k", "/")]


async def test_the_harness_runs_a_terminal_plugin_against_the_in_memory_mock() -> None:
    plugin = make_plugin(
        "chatgpt-proxy", {"apiKey": "sk-x", "promptParam": "text", "chatgptUri": "mock://v1/completions"}
    )
    outcome = await run_request(plugin, make_exchange("GET", "/", query="text=Say,hello"))
    assert isinstance(outcome, Reply) and outcome.status == 200
    assert "Say,hello" in outcome.body.decode()
    missing = await run_request(plugin, make_exchange("GET", "/"))
    assert isinstance(missing, GatewayError) and missing.status == 400


async def test_the_harness_hides_the_body_from_the_request_headers_hook(registered: None) -> None:
    seen: list[bytes | None] = []

    class BodyPeek(Recorder):
        async def request_headers(self, ex: Exchange) -> Reply | None:
            seen.append(ex.request.body)
            return None

        async def request_body(self, ex: Exchange) -> Reply | None:
            seen.append(ex.request.body)
            return None

    plugin = BodyPeek(RecorderConfig(), recorder("x").scope, make_services())
    assert await run_request(plugin, make_exchange("POST", "/", body=b"payload")) is None
    assert seen == [None, b"payload"]
