"""ai-token-ratelimit (plugins/limits/ai_token_ratelimit.py; SPEC §3, §8; Higress reference
§10), one plugin at a time, no sockets, state in memory. The reservation it shares with
ai-quota is tested in test_reservation.py."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from tests.support.plugin_support import (
    Clock,
    DownStore,
    build,
    call,
    chat_body,
    header,
    refused,
    served,
    services_with,
)
from tollway.exchange import Exchange
from tollway.plugins.limits.ai_token_ratelimit import AiTokenRatelimit
from tollway.plugins.limits.reservation import estimate
from tollway.state.memory import MemoryStateStore
from tollway.testing.harness import run_request

LIMIT: dict[str, Any] = {
    "rule_name": "tokens",
    "limit_by_per_consumer": "",
    "limit_keys": [{"key": "*", "token_per_minute": 1000}],
}
KEY = "ai-token-ratelimit:tokens:0:limit_by_per_consumer::60:alice"


def limiter(config: dict[str, Any] | None = None, **kwargs: Any) -> tuple[AiTokenRatelimit, MemoryStateStore]:
    store = MemoryStateStore(Clock(60 * 28_333_334 + 1))
    plugin = build("ai-token-ratelimit", config or LIMIT, services_with(state=store), **kwargs)
    assert isinstance(plugin, AiTokenRatelimit)
    return plugin, store


# --- admission and settlement -------------------------------------------------------------


async def test_a_call_reserves_its_estimate_and_settles_to_the_reported_usage() -> None:
    plugin, store = limiter()
    ex = call("alice", body=chat_body(max_tokens=200))
    assert await run_request(plugin, ex) is None
    assert store.window_used(KEY) == estimate(ex, 256)
    await plugin.done(served(ex, 12, 48))
    assert store.window_used(KEY) == 60


async def test_a_call_that_does_not_fit_is_429_with_the_reset_headers() -> None:
    plugin, _ = limiter()
    first = call("alice", body=chat_body(max_tokens=900))
    assert await run_request(plugin, first) is None
    err = refused(
        await run_request(plugin, call("alice", body=chat_body(max_tokens=100))), 429, "ai-token-ratelimit.exceeded"
    )
    assert err.code == "rate_limit_exceeded"
    assert header(err.headers, "retry-after") == "59"
    assert header(err.headers, "x-ratelimit-reset") == "59"
    assert header(err.headers, "x-tokenratelimit-reset") == "59"
    await plugin.done(served(first, 10, 20))  # settling frees the rest of the window
    assert await run_request(plugin, call("alice", body=chat_body(max_tokens=100))) is None


async def test_another_consumer_has_its_own_tokens() -> None:
    plugin, _ = limiter()
    assert await run_request(plugin, call("alice", body=chat_body(max_tokens=990))) is None
    assert await run_request(plugin, call("bob", body=chat_body(max_tokens=900))) is None


async def test_a_call_larger_than_the_whole_limit_runs_only_in_an_empty_window() -> None:
    plugin, store = limiter()
    big = call("alice", body=chat_body(max_tokens=5000))
    assert await run_request(plugin, big) is None
    assert store.window_used(KEY) == 1000
    refused(await run_request(plugin, call("alice", body=chat_body(max_tokens=1))), 429, "ai-token-ratelimit.exceeded")
    await plugin.done(served(big, 10, 1500))
    assert store.window_used(KEY) == 1510


async def test_a_refused_or_failed_call_gives_its_reservation_back() -> None:
    plugin, store = limiter()
    ex = call("alice", body=chat_body(max_tokens=100))
    await run_request(plugin, ex)
    ex.status = 429  # a later plugin refused it
    await plugin.done(ex)
    assert store.window_used(KEY) == 0


async def test_counting_tokens_reserves_the_prompt_alone_and_costs_nothing() -> None:
    """Claude Code counts tokens before many calls; no provider bills counting, so the
    window must not fill with reservations of output that never comes."""
    plugin, store = limiter()
    body = b'{"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "How many tokens is this?"}]}'
    ex = call("alice", body=body, path="/v1/messages/count_tokens")
    assert await run_request(plugin, ex) is None
    assert store.window_used(KEY) == (len(body) + 3) // 4  # the prompt's estimate, no output
    ex.provider, ex.status = "claude", 200  # answered by the provider: {"input_tokens": N}, no usage
    await plugin.done(ex)
    assert store.window_used(KEY) == 0


async def test_only_post_calls_spend_tokens() -> None:
    plugin, store = limiter()
    assert await run_request(plugin, call("alice", method="GET", path="/v1/models", body=None)) is None
    assert store.window_used(KEY) is None


async def test_show_limit_quota_header_counts_tokens() -> None:
    plugin, _ = limiter({**LIMIT, "show_limit_quota_header": True})
    ex = call("alice", body=chat_body(max_tokens=100))
    await run_request(plugin, ex)
    assert header(ex.response_headers, "x-ratelimit-limit") == "1000"
    assert header(ex.response_headers, "x-ratelimit-remaining") == str(1000 - estimate(ex, 256))


async def test_keys_on_the_model() -> None:
    config = {"rule_name": "m", "limit_by_per_model": "", "limit_keys": [{"key": "big", "token_per_hour": 100}]}
    plugin, _ = limiter(config)
    body = orjson.dumps({"model": "big", "max_tokens": 90})
    assert await run_request(plugin, call("a", body=body)) is None
    refused(await run_request(plugin, call("b", body=body)), 429, "ai-token-ratelimit.exceeded")
    assert await run_request(plugin, call("b", body=orjson.dumps({"model": "small", "max_tokens": 90}))) is None


async def test_an_unreachable_store_lets_calls_through_by_default_and_refuses_when_closed() -> None:
    down = DownStore()
    open_plugin = build("ai-token-ratelimit", LIMIT, services_with(state=down))
    ex = call("alice", body=chat_body(max_tokens=10))
    assert await run_request(open_plugin, ex) is None
    await open_plugin.done(served(ex, 1, 1))  # nothing was reserved, nothing to settle
    closed = build("ai-token-ratelimit", LIMIT, services_with(state=down), failure_mode="closed")
    refused(await run_request(closed, call("alice", body=chat_body())), 503, "ai-token-ratelimit.state_unavailable")


async def test_settling_while_the_store_is_down_does_not_raise() -> None:
    store = MemoryStateStore()
    services = services_with(state=store)
    plugin = build("ai-token-ratelimit", LIMIT, services)
    ex = call("alice", body=chat_body(max_tokens=10))
    await run_request(plugin, ex)
    assert isinstance(plugin, AiTokenRatelimit)
    plugin.store = DownStore()  # the store goes down between the admission and the settlement
    await plugin.done(served(ex, 1, 1))


async def test_two_entries_on_one_route_keep_their_own_reservations() -> None:
    store = MemoryStateStore()
    services = services_with(state=store)
    a = build("ai-token-ratelimit", {**LIMIT, "rule_name": "a"}, services)
    b = build("ai-token-ratelimit", {**LIMIT, "rule_name": "b"}, services)
    ex = call("alice", body=chat_body(max_tokens=100))
    await run_request(a, ex)
    await run_request(b, ex)
    served(ex, 5, 5)
    await a.done(ex)
    await b.done(ex)
    assert sorted(s[1] for s in store._windows.values()) == [10, 10]


# --- the documented bound ----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
async def test_the_overshoot_never_exceeds_the_documented_bound(seed: int) -> None:
    """Random interleavings of admissions and settlements, with calls that spend more
    than they reserved: the window total stays within L + sum over the calls in flight
    at the last admission of (spent - reserved), and the counter equals the usage."""
    rng = random.Random(seed)
    plugin, store = limiter({**LIMIT, "reserve_output_tokens": rng.choice([0, 20, 256])})
    in_flight: list[tuple[Exchange, int, int]] = []
    admitted_spent: list[int] = []
    excess_at_last_admission = 0
    for _ in range(200):
        if in_flight and rng.random() < 0.4:
            ex, reserved, cost = in_flight.pop(rng.randrange(len(in_flight)))
            await plugin.done(served(ex, cost // 3, cost - cost // 3))
            continue
        max_tokens = rng.choice([None, 5, 50, 400, 2000])
        ex = call("alice", body=chat_body(max_tokens=max_tokens, words=rng.randrange(1, 40)))
        if await run_request(plugin, ex) is None:
            reserved = min(estimate(ex, plugin.config.reserve_output_tokens), 1000)
            cost = rng.randrange(0, 3 * reserved + 50)
            in_flight.append((ex, reserved, cost))
            admitted_spent.append(cost)
            excess_at_last_admission = sum(max(0, c - r) for _, r, c in in_flight)
    for ex, _, cost in in_flight:
        await plugin.done(served(ex, cost, 0))
    total = sum(admitted_spent)
    assert store.window_used(KEY) == total
    assert total <= 1000 + excess_at_last_admission


def test_the_plugin_registers_with_higress_name_and_priority() -> None:
    from tollway.plugin import Phase
    from tollway.plugins.registry import REGISTRY

    assert REGISTRY["ai-token-ratelimit"] is AiTokenRatelimit
    assert (AiTokenRatelimit.phase, AiTokenRatelimit.priority) == (Phase.UNSPECIFIED, 600)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({k: v for k, v in LIMIT.items() if k != "rule_name"}, "rule_name"),
        ({**LIMIT, "limit_keys": [{"key": "*", "query_per_minute": 5}]}, "extra"),
        ({**LIMIT, "limit_keys": [{"key": "*"}]}, "give one of token_per"),
        ({**LIMIT, "reserve_output_tokens": -1}, "greater than or equal to 0"),
    ],
)
def test_invalid_configs_are_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        build("ai-token-ratelimit", config)
    assert message in str(info.value)
