"""Every usage record agrees with what the provider reported (SPEC §9): for each client
API (chat, messages, responses) toward each provider protocol (OpenAI, Anthropic,
Gemini), plain and streamed, translated and not, through a real gateway with key-auth
whose providers are the transcript fakes. The record's tokens, cached tokens, model,
status and cost are checked against the transcript's usage priced by hand from the
providers' list prices (not from the gateway's table), Anthropic's prompt-cache writes
at 1.25× input and its reads at 0.1×; and the record holds every count its cost is made
of, so that pricing the record's own counts by docs/usage.md's formula gives its cost.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import httpx
import pytest

from tests.conftest import Proc
from tests.support.fake_provider import FakeProvider, new_request_id, serve_gateway, usage_record
from tests.support.usage_support import metric_sum, parse_metrics

KEY = "ck-records-5e1a"
CONFIG = """
storage: {{database: "sqlite:///./tollway.db"}}
providers:
  - {{id: claude, type: claude, baseUrl: "{fake}", apiTokens: [sk-ant]}}
  - {{id: gpt, type: openai, baseUrl: "{fake}/v1", apiTokens: [sk-oai]}}
  - {{id: gemini, type: gemini, baseUrl: "{fake}", apiTokens: [g-key]}}
routes:
  - name: v1
    path_prefix: /v1/
    providers: [gpt]
    model_providers: {{"claude-*": claude, "gpt-*": gpt, "gemini-*": gemini}}
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      consumers: [{{name: app, credential: {key}}}]
"""
SCHEMA = {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}
ASK = [{"role": "user", "content": "What is the weather in Paris tomorrow?"}]


class Reported(NamedTuple):
    """A transcript's usage as the record must hold it, and its cost in US dollars."""

    model: str
    input_tokens: int  # cache reads and writes included
    cached_tokens: int
    output_tokens: int  # reasoning included
    cost_usd: float
    cache_write_tokens: int = 0


def _usd(*tokens_times_price: tuple[int, float]) -> float:
    return sum(n * price for n, price in tokens_times_price) / 1_000_000


# The fakes' transcripts: tools → the plain answer, text → the stream (see fake_provider).
REPORTED: dict[tuple[str, bool], Reported] = {
    # messages_tools.response.json: 497 input + 120 cache writes, 73 out; Claude Sonnet 4
    # at $3 in, $3.75 cache writes, $15 out.
    ("claude", False): Reported(
        "claude-sonnet-4-20250514", 617, 0, 73, _usd((497, 3.0), (120, 3.75), (73, 15.0)), cache_write_tokens=120
    ),
    # messages_text.stream.sse: 21 input + 1024 cache reads ($0.30), 12 out.
    ("claude", True): Reported("claude-sonnet-4-20250514", 1045, 1024, 12, _usd((21, 3.0), (1024, 0.30), (12, 15.0))),
    # chat_tools.response.json: GPT-4o at $2.50 in, $10 out.
    ("gpt", False): Reported("gpt-4o-2024-08-06", 412, 0, 24, _usd((412, 2.50), (24, 10.0))),
    # chat_text.stream.sse: GPT-4o mini at $0.15 in, $0.075 cached, $0.60 out.
    ("gpt", True): Reported("gpt-4o-mini-2024-07-18", 1117, 1024, 8, _usd((93, 0.15), (1024, 0.075), (8, 0.60))),
    # generate_tools.response.json: 27 candidates + 56 thoughts; Gemini 2.5 Flash at
    # $0.30 in, $0.03 cached, $2.50 out.
    ("gemini", False): Reported("gemini-2.5-flash", 398, 0, 83, _usd((398, 0.30), (83, 2.50))),
    # generate_text.stream.sse's last chunk: 1040 prompt (1024 cached), 11 + 45 thoughts.
    ("gemini", True): Reported("gemini-2.5-flash", 1040, 1024, 56, _usd((16, 0.30), (1024, 0.03), (56, 2.50))),
}


# The list prices above, per model: input, cached input, cache write, output.
PRICES = {
    "claude-sonnet-4-20250514": (3.0, 0.30, 3.75, 15.0),
    "gpt-4o-2024-08-06": (2.50, 1.25, 2.50, 10.0),
    "gpt-4o-mini-2024-07-18": (0.15, 0.075, 0.15, 0.60),
    "gemini-2.5-flash": (0.30, 0.03, 0.30, 2.50),
}


def _repriced(record: dict[str, Any]) -> float:
    """docs/usage.md's formula applied to the record's own counts."""
    inp, cached, written, out = PRICES[record["model_upstream"]]
    fresh = record["input_tokens"] - record["cached_tokens"] - record["cache_write_tokens"]
    return _usd(
        (fresh, inp), (record["cached_tokens"], cached), (record["cache_write_tokens"], written),
        (record["output_tokens"], out),
    )  # fmt: skip


def _body(api: str, model: str, stream: bool) -> tuple[str, dict[str, Any]]:
    """The request path and body: with a tool when plain (the fakes' tools transcript),
    without when streamed (their text one)."""
    if api == "chat":
        body: dict[str, Any] = {"model": model, "messages": ASK}
        if not stream:
            body["tools"] = [{"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}}]
        return "/v1/chat/completions", body
    if api == "messages":
        body = {"model": model, "max_tokens": 256, "messages": ASK}
        if not stream:
            body["tools"] = [{"name": "get_weather", "input_schema": SCHEMA}]
        return "/v1/messages", body
    body = {"model": model, "input": ASK[0]["content"]}
    if not stream:
        body["tools"] = [{"type": "function", "name": "get_weather", "parameters": SCHEMA}]
    return "/v1/responses", body


CASES = [
    (api, provider, stream)
    for api in ("chat", "messages", "responses")
    for provider in ("claude", "gpt", "gemini")
    for stream in (False, True)
    # The Responses API goes through to OpenAI, which the fake does not serve
    # (tests/system/test_responses_api.py covers that passthrough).
    if not (api == "responses" and provider == "gpt")
]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as f:
        yield f


@pytest.fixture(scope="module")
def gw(fake: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = serve_gateway(tmp_path_factory.mktemp("record-costs"), CONFIG.format(fake=fake.url, key=KEY))
    yield proc
    assert proc.stop() == 0


@pytest.mark.parametrize(("api", "provider", "stream"), CASES)
def test_the_record_holds_what_the_provider_reported(gw: Proc, api: str, provider: str, stream: bool) -> None:
    want = REPORTED[(provider, stream)]
    # The model the transcript names is the one asked for: the record prices the model
    # the provider was asked for (``model_upstream``).
    path, body = _body(api, want.model, stream)
    if stream:
        body["stream"] = True
    rid = new_request_id()
    headers = {"authorization": f"Bearer {KEY}", "x-request-id": rid, "anthropic-version": "2023-06-01"}
    with (
        httpx.Client(base_url=gw.url, timeout=10) as client,
        client.stream("POST", path, json=body, headers=headers) as r,
    ):
        answer = r.read()
    assert r.status_code == 200, answer
    record = usage_record(gw, rid)
    assert (record["status"], record["api"], record["provider"], record["stream"]) == (200, api, provider, stream)
    assert (record["model_requested"], record["model_upstream"]) == (want.model, want.model)
    got = (record["input_tokens"], record["cached_tokens"], record["output_tokens"], record["tokens_estimated"])
    assert got == (want.input_tokens, want.cached_tokens, want.output_tokens, False)
    assert record["cache_write_tokens"] == want.cache_write_tokens
    assert record["cost_usd"] == pytest.approx(want.cost_usd, rel=1e-9)
    assert _repriced(record) == pytest.approx(record["cost_usd"], rel=1e-9)


def test_cache_writes_are_summed_and_counted_as_the_records_hold_them(gw: Proc) -> None:
    # After the calls above (the module's gateway): every cache write a record holds is
    # in /api/usage's sums and in tollway_tokens_total{kind="cache_write"}.
    rid = new_request_id()
    path, body = _body("messages", "claude-sonnet-4-20250514", False)
    headers = {"authorization": f"Bearer {KEY}", "x-request-id": rid, "anthropic-version": "2023-06-01"}
    assert httpx.post(gw.url + path, json=body, headers=headers, timeout=10).status_code == 200
    assert usage_record(gw, rid)["cache_write_tokens"] == 120
    records = httpx.get(gw.admin_url + "/api/requests", params={"limit": "1000"}).json()["requests"]
    written = sum(r["cache_write_tokens"] for r in records)
    assert written >= 120 and written % 120 == 0
    rows = httpx.get(gw.admin_url + "/api/usage", params={"by": "consumer"}).json()["rows"]
    assert [(r["key"], r["cache_write_tokens"]) for r in rows] == [("app", written)]
    samples = parse_metrics(httpx.get(gw.admin_url + "/metrics").text)
    assert metric_sum(samples, "tollway_tokens_total", consumer="app", kind="cache_write") == written


@pytest.mark.parametrize("stream", [False, True])
def test_one_hour_cache_writes_are_priced_at_twice_the_input_price(gw: Proc, stream: bool) -> None:
    # messages_cache_1h: 50 input + 3000 cache writes (1000 to the five-minute cache, 2000
    # to the one-hour one, which Anthropic bills at 2× input, not 1.25×), 20 out. The
    # stream's message_delta repeats the input counts without the split: the split of
    # message_start stands.
    model = "claude-sonnet-4-20250514"
    system = [{"type": "text", "text": "The contract: …", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    body: dict[str, Any] = {"model": model, "max_tokens": 256, "system": system, "messages": ASK, "stream": stream}
    rid = new_request_id()
    headers = {"authorization": f"Bearer {KEY}", "x-request-id": rid, "anthropic-version": "2023-06-01"}
    with (
        httpx.Client(base_url=gw.url, timeout=10) as client,
        client.stream("POST", "/v1/messages", json=body, headers=headers) as r,
    ):
        answer = r.read()
    assert r.status_code == 200, answer
    record = usage_record(gw, rid)
    assert (record["input_tokens"], record["cache_write_tokens"], record["output_tokens"]) == (3050, 3000, 20)
    assert record["tokens_estimated"] is False
    assert record["cost_usd"] == pytest.approx(_usd((50, 3.0), (1000, 3.75), (2000, 6.0), (20, 15.0)), rel=1e-9)
