"""ai-token-ratelimit through a real `tollway serve` (SPEC §3, §8): 50 concurrent streams
against 1,000 tokens a minute stay within the documented bound, and the counter ends
equal to the usage the provider reported."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio

from tests.conftest import Proc
from tests.support.plugin_support import wait_for_window_room
from tests.support.redis_support import SHARED_HOST, SHARED_PORT, redis_prefix, redis_url  # noqa: F401

GatewayFactory = Callable[..., Proc]
LIMIT = 1000
STREAMS = 50


def config(mock_url: str, state: str, reserve_output_tokens: int | None) -> str:
    reserve = "" if reserve_output_tokens is None else f"\n      reserve_output_tokens: {reserve_output_tokens}"
    return f"""
storage: {{state: "{state}"}}
providers: [{{id: mock, type: openai, baseUrl: "{mock_url}/v1", apiTokens: [sk-test]}}]
routes: [{{name: chat, path_prefix: /v1/, provider: mock}}]
plugins:
  - name: key-auth
    defaultConfig: {{keys: [authorization], consumers: [{{name: alice, credential: key-alice}}]}}
  - name: ai-token-ratelimit
    defaultConfig:
      rule_name: tokens
      show_limit_quota_header: true
      limit_by_per_consumer: ""
      limit_keys: [{{key: "*", token_per_minute: {LIMIT}}}]{reserve}
"""


def body(words: int = 4, **extra: Any) -> bytes:
    text = " ".join(f"w{i}" for i in range(words))
    return orjson.dumps(
        {
            "model": "mock-gpt",
            "messages": [{"role": "user", "content": text}],
            "stream": True,
            "stream_options": {"include_usage": True},
            **extra,
        }
    )


HEADERS = {
    "authorization": "Bearer key-alice",
    "content-type": "application/json",
    "x-mock-chunks": "4",
    "x-mock-chunk-delay-ms": "40",
}


async def stream(client: httpx.AsyncClient, url: str, payload: bytes, reply: str | None) -> tuple[int, int]:
    """(status, input + output tokens the provider reported in the stream)."""
    headers = dict(HEADERS)
    if reply is not None:
        headers["x-mock-reply"] = reply
    async with client.stream("POST", url + "/v1/chat/completions", content=payload, headers=headers) as r:
        tokens = 0
        async for line in r.aiter_lines():
            if line.startswith("data: {"):
                usage = orjson.loads(line[6:]).get("usage")
                if usage:
                    tokens = usage["prompt_tokens"] + usage["completion_tokens"]
        return r.status_code, tokens


async def burst(url: str, payload: bytes, reply: str | None = None) -> list[tuple[int, int]]:
    limits = httpx.Limits(max_connections=STREAMS, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        return await asyncio.gather(*(stream(client, url, payload, reply) for _ in range(STREAMS)))


def counter_through_headers(url: str) -> int:
    """The window's counter, read with one more call: its X-RateLimit-Remaining."""
    probe = orjson.dumps({"model": "mock-gpt", "messages": [], "max_tokens": 0})
    r = httpx.post(url + "/v1/chat/completions", content=probe, headers={**HEADERS, "x-mock-reply": "ok"})
    remaining = int(r.headers["x-ratelimit-remaining"])
    if r.status_code == 429:
        return LIMIT - remaining
    return LIMIT - remaining - (len(probe) + 3) // 4


async def redis_counter(prefix: str) -> int:
    client = redis.asyncio.Redis(host=SHARED_HOST, port=SHARED_PORT)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}ai-token-ratelimit:tokens:*")]
        assert len(keys) == 1, keys
        return int(await client.get(keys[0]) or 0)
    finally:
        await client.aclose()


def wait_until(predicate: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("state", ["memory", "redis"])
async def test_fifty_concurrent_streams_stay_within_the_limit_and_the_counter_is_the_real_usage(
    gateway: GatewayFactory, mock_llm: Proc, request: pytest.FixtureRequest, state: str
) -> None:
    state_url = request.getfixturevalue("redis_url") if state == "redis" else "memory"
    gw = gateway(config(mock_llm.url, state_url, None))
    wait_for_window_room(60, 20)
    results = await burst(gw.url, body())
    admitted = [tokens for status, tokens in results if status == 200]
    assert admitted and all(t > 0 for t in admitted)
    assert {status for status, _ in results} <= {200, 429}
    # Every call here names no max_tokens and has a plain prompt: the documented bound
    # is zero, the window never goes over.
    assert sum(admitted) <= LIMIT
    gw.wait_for_stdout(lambda lines: len(lines) >= STREAMS)
    if state == "redis":
        assert await redis_counter(request.getfixturevalue("redis_prefix")) == sum(admitted)
    assert counter_through_headers(gw.url) == sum(admitted)


@pytest.mark.parametrize("state", ["memory", "redis"])
async def test_calls_that_spend_beyond_their_reservation_overshoot_at_most_the_documented_bound(
    gateway: GatewayFactory, mock_llm: Proc, request: pytest.FixtureRequest, state: str
) -> None:
    state_url = request.getfixturevalue("redis_url") if state == "redis" else "memory"
    # No output reserved and 60-word answers: every call spends more than it reserves.
    gw = gateway(config(mock_llm.url, state_url, 0))
    wait_for_window_room(60, 20)
    payload = body()
    reserved = (len(payload) + 3) // 4
    results = await burst(gw.url, payload, reply=" ".join(["word"] * 60))
    admitted = [tokens for status, tokens in results if status == 200]
    assert admitted
    # The bound of docs/limits.md: L plus, over the calls in flight at the last
    # admission (at most all admitted ones), what each spent beyond its reservation;
    # and no more calls in flight than reservations fit under L.
    assert len(admitted) <= LIMIT // reserved
    assert sum(admitted) <= LIMIT + sum(max(0, t - reserved) for t in admitted)
    gw.wait_for_stdout(lambda lines: len(lines) >= STREAMS)
    if state == "redis":
        assert await redis_counter(request.getfixturevalue("redis_prefix")) == sum(admitted)
    # (In memory the counter is past the limit here, beyond what X-RateLimit-Remaining
    # can show; the test above reads it while it is within.)


async def test_a_stream_the_client_abandons_is_settled_to_the_estimate_of_what_it_used(
    gateway: GatewayFactory,
    mock_llm: Proc,
    redis_url: str,  # noqa: F811
    redis_prefix: str,  # noqa: F811
) -> None:
    gw = gateway(config(mock_llm.url, redis_url, None))
    wait_for_window_room(60, 20)
    payload = body()
    reserved = (len(payload) + 3) // 4 + 256
    headers = {**HEADERS, "x-mock-chunks": "8", "x-mock-chunk-delay-ms": "300", "x-mock-reply": "a b c d e f g h"}
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream("POST", gw.url + "/v1/chat/completions", content=payload, headers=headers) as r:
            assert r.status_code == 200
            async for line in r.aiter_lines():
                if line.startswith("data: {") and '"content"' in line:
                    break  # walk away after the first words
    gw.wait_for_stdout(lambda lines: any('"status":499' in line for line in lines))
    counted = await redis_counter(redis_prefix)
    # The gateway estimated what the abandoned call used (prompt + words seen), which
    # replaced the reservation.
    assert 0 < counted < reserved
