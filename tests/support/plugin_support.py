"""Helpers for the limit plugin tests: building plugins with a scope, fake clocks and stores,
calls and what the provider answered them."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from tollway.config.schema import FailureMode
from tollway.consumers.consumer import Consumer
from tollway.errors import GatewayError
from tollway.exchange import Attempt, Exchange
from tollway.plugin import Plugin, PluginConfig, Scope
from tollway.plugins.registry import REGISTRY
from tollway.services import Services
from tollway.state import (
    Allowance,
    Applied,
    QuotaState,
    QuotaTake,
    SpendAdmission,
    StateStore,
    StateUnavailable,
    WindowTake,
)
from tollway.state.memory import MemoryStateStore
from tollway.testing.harness import make_exchange, make_services


class Clock:
    """A clock for ``MemoryStateStore`` that only moves when told."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class DownStore(StateStore):
    """A state store that never answers, as Redis does while it is down."""

    def __init__(self) -> None:
        self.errors = 0

    def _fail(self) -> StateUnavailable:
        self.errors += 1
        return StateUnavailable("down")

    async def take(self, key: str, window_s: int, limit: int, amount: int) -> WindowTake:
        raise self._fail()

    async def adjust(self, key: str, window: int, delta: int) -> None:
        raise self._fail()

    async def quota_get(self, key: str) -> int | None:
        raise self._fail()

    async def quota_set(self, key: str, value: int) -> None:
        raise self._fail()

    async def quota_add(self, key: str, delta: int) -> int:
        raise self._fail()

    async def quota_take(self, key: str, amount: int) -> QuotaTake:
        raise self._fail()

    async def quota_settle(self, key: str, generation: int, reserved: int, spent: int) -> int | None:
        raise self._fail()

    async def quota_read(self, key: str) -> QuotaState | None:
        raise self._fail()

    async def quota_apply(self, key: str, refresh: bool, amount: int, version: int) -> Applied:
        raise self._fail()

    async def quota_restore(self, key: str, value: int, version: int, generation: int, *, replace: bool) -> bool:
        raise self._fail()

    async def spend_admit(self, subjects: Sequence[Allowance], amount: int, hold_ms: int) -> SpendAdmission:
        raise self._fail()

    async def spend_release(
        self, subjects: Sequence[Allowance], amount: int, spent: int, lease: str = ""
    ) -> list[int | None]:
        raise self._fail()

    async def spend_restore(self, key: str, value: int, ttl_ms: int) -> bool:
        raise self._fail()

    async def spend_read(self, key: str) -> tuple[int | None, int]:
        raise self._fail()

    async def claim(self, key: str, ttl_ms: int) -> bool:
        raise self._fail()

    async def bind(self, key: str, value: str, ttl_ms: int) -> str:
        raise self._fail()

    async def bound(self, key: str) -> str | None:
        raise self._fail()

    async def spend_forget(self, key: str) -> None:
        raise self._fail()


def services_with(
    state: StateStore | None = None, local_state: StateStore | None = None, clock: Clock | None = None
) -> Services:
    return make_services(
        state=state or MemoryStateStore(clock or Clock()),
        local_state=local_state or MemoryStateStore(clock or Clock()),
    )


def build(
    name: str,
    config: Mapping[str, Any],
    services: Services | None = None,
    *,
    rule: int | None = None,
    failure_mode: FailureMode | None = None,
) -> Plugin[PluginConfig]:
    """The plugin ``name`` from a config dict, as a snapshot builds it (scope included)."""
    cls = REGISTRY[name]
    validated = cls.config_model.model_validate(dict(config))
    return cls(validated, Scope(name, rule, rule is not None, failure_mode), services or services_with())


def call(
    consumer: str | None = None,
    *,
    groups: tuple[str, ...] = (),
    headers: Mapping[str, str] | None = None,
    query: str = "",
    body: bytes | None = b'{"model": "gpt-4o-mini", "messages": []}',
    client_ip: str = "127.0.0.1",
    method: str = "POST",
    path: str = "/v1/chat/completions",
) -> Exchange:
    ex = make_exchange(method, path, headers or {}, query, body, client_ip=client_ip)
    if consumer is not None:
        ex.consumer = Consumer(consumer, groups=groups)
    return ex


def chat_body(max_tokens: int | None = None, words: int = 3, **extra: Any) -> bytes:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": " ".join(["w"] * words)}], **extra}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return orjson.dumps(body)


def served(ex: Exchange, input_tokens: int, output_tokens: int, status: int = 200) -> Exchange:
    """Make ``ex`` look like a call the provider answered with this usage."""
    ex.provider = "p"
    ex.attempts.append(Attempt("p", status, 1.0))
    ex.status = status
    ex.usage.input_tokens, ex.usage.output_tokens, ex.usage.reported = input_tokens, output_tokens, True
    return ex


def refused(outcome: object, status: int, reason: str) -> GatewayError:
    assert isinstance(outcome, GatewayError), f"expected a refusal, got {outcome!r}"
    assert (outcome.status, outcome.reason) == (status, reason), (outcome.status, outcome.reason)
    return outcome


def header(pairs: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in pairs if k == name), None)


# A UTC calendar day, as budgets and quotas count it (days start at multiples of it).
DAY_S = 86_400


def wait_for_window_room(window_s: int, need_s: float) -> None:
    """Sleep into the next fixed window if fewer than ``need_s`` seconds are left in this
    one, so a test that fills a window cannot see it roll over half-way."""
    left = window_s - time.time() % window_s
    if left < need_s:
        time.sleep(left + 0.05)


__all__ = [
    "DAY_S",
    "Clock",
    "DownStore",
    "build",
    "call",
    "chat_body",
    "header",
    "refused",
    "served",
    "services_with",
    "wait_for_window_room",
]
