"""ai-token-ratelimit (default phase, priority 600): tokens per key per window, shared
through ``storage.state``.

Higress's fields (``rule_name``, ``global_threshold`` / ``rule_items`` / ``limit_keys``
with ``token_per_second|minute|hour|day``, ``rejected_code``, ``rejected_msg``) and the
same keys as the request limits (consumer, group, model, header, …; see
``config.py``). A refusal is 429 ``ai-token-ratelimit.exceeded`` with
``Retry-After``, ``X-RateLimit-Reset`` and Higress's ``X-TokenRateLimit-Reset``;
``show_limit_quota_header`` adds ``X-RateLimit-Limit`` / ``X-RateLimit-Remaining`` (tokens).
Only POST calls are limited: nothing else spends tokens.

Unlike Higress, a call reserves its estimated cost before it goes upstream (see
``reservation.py``): it is admitted only if ``used + reservation <= limit``, where
the reservation is ``min(estimate, limit)`` (so a call larger than the whole limit runs
only in an otherwise empty window). The ``done`` hook replaces the reservation by
input + output tokens as the provider reported them, in the window where it was taken.

Worst-case overshoot (docs/limits.md has the derivation). At each admission the counter
(settled usage plus open reservations) is at most the limit ``L``; afterwards it moves
only when calls settle. So a window's total exceeds ``L`` by at most the sum, over the
calls still in flight when its last call was admitted, of ``max(0, spent - reserved)``.
Their reservations fit under ``L`` together, so there are at most ``L // r_min`` of
them (``r_min`` the smallest reservation). A call spends more than it reserved only if
it names no output limit and answers beyond ``reserve_output_tokens``, if its prompt is
denser than 4 bytes a token, or if its estimate exceeded ``L`` and was cut to ``L``.
Calls that carry ``max_tokens`` and English or JSON prompts never do: the limit holds
exactly. While the store is unreachable and ``failure_mode`` is ``open`` (the default),
calls are not limited at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from tollway.exchange import Exchange, Reply, StateKey
from tollway.plugin import Plugin, Scope
from tollway.plugins.limits.config import LimitRulesConfig, TokenLimitKey, TokenThreshold
from tollway.plugins.limits.failure_mode import fails_open, state_unavailable
from tollway.plugins.limits.reservation import estimate, refuse_unmetered, route_calls, spent
from tollway.plugins.limits.rules import LimitRules, Refusal, add_quota_headers, namespace_for
from tollway.services import Services
from tollway.state import StateUnavailable

_RESET_HEADERS = ("retry-after", "x-ratelimit-reset", "x-tokenratelimit-reset")


class AiTokenRatelimitConfig(LimitRulesConfig[TokenThreshold, TokenLimitKey]):
    rule_name: str = Field(min_length=1)
    # Output tokens to reserve for a call that names no max_tokens.
    reserve_output_tokens: int = Field(256, ge=0)


@dataclass(slots=True)
class _Reservation:
    key: str
    window: int
    tokens: int


class AiTokenRatelimit(Plugin[AiTokenRatelimitConfig]):
    name = "ai-token-ratelimit"
    priority = 600
    config_model = AiTokenRatelimitConfig

    def __init__(self, config: AiTokenRatelimitConfig, scope: Scope, services: Services) -> None:
        super().__init__(config, scope, services)
        self.rules = LimitRules(config, namespace_for(self.name, config.rule_name, scope))
        self.refusal = Refusal(config.rejected_code, config.rejected_msg, f"{self.name}.exceeded", _RESET_HEADERS)
        self.fail_open = fails_open(scope, default_open=True)
        self.store = services.state
        # One key per plugin object: two ai-token-ratelimit entries on one route each
        # keep their own reservation.
        self._held: StateKey[_Reservation] = StateKey(f"{self.name}.reservation.{id(self):x}")

    async def request_body(self, ex: Exchange) -> Reply | None:
        """Reserve the call's estimate, or refuse it when the window has no room."""
        if ex.request.method != "POST":
            return None
        hit = self.rules.match(ex)
        if hit is None:
            return None
        key, counter = hit
        refuse_unmetered(self.name, ex)
        calls = route_calls(ex, self.scope.providers)
        tokens = min(estimate(ex, self.config.reserve_output_tokens, calls), counter.limit)
        try:
            took = await self.store.take(key, counter.window_s, counter.limit, tokens)
        except StateUnavailable:
            if self.fail_open:
                return None
            raise state_unavailable(self.name) from None
        if self.config.show_limit_quota_header:
            add_quota_headers(ex, counter.limit, took.used)
        if not took.admitted:
            raise self.refusal.error(took.reset_ms)
        ex.put(self._held, _Reservation(key, took.window, tokens))
        return None

    async def done(self, ex: Exchange) -> None:
        """Settle the reservation to the provider's reported usage (or its estimate)."""
        held = ex.get(self._held)
        if held is None:
            return
        delta = spent(ex, held.tokens) - held.tokens
        if delta:
            try:
                await self.store.adjust(held.key, held.window, delta)
            except StateUnavailable:
                pass  # the store logged and counted it; the window ends on its own


__all__ = ["AiTokenRatelimit", "AiTokenRatelimitConfig"]
