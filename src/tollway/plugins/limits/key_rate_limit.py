"""key-rate-limit (default phase, priority 10): requests per key per window, in this process.

Higress's fields (``limit_by_header`` / ``limit_by_param`` with ``limit_keys``), and
everything cluster-key-rate-limit accepts (rule items, a global threshold, per-value
keys, groups, models, IPs; see ``config.py``). Windows are fixed and aligned to
multiples of their length since the Unix epoch. Counters live in this process's memory
whatever ``storage.state`` says: each worker or replica counts on its own (use
cluster-key-rate-limit for one limit across them). They survive a config reload.

A refusal is ``rejected_code`` (429) with ``rejected_msg``, ``Retry-After`` and
``X-RateLimit-Reset`` (whole seconds to the window's end); with
``show_limit_quota_header`` every response, admitted or not, also carries
``X-RateLimit-Limit`` and ``X-RateLimit-Remaining``. A request matching no limit passes
untouched. ``RequestRateLimit`` is the behaviour both request limits share.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from tollway.exchange import Exchange, Reply
from tollway.plugin import Plugin, Scope
from tollway.plugins.limits.config import LimitRulesConfig, QueryLimitKey, QueryThreshold
from tollway.plugins.limits.failure_mode import fails_open, state_unavailable
from tollway.plugins.limits.rules import LimitRules, Refusal, add_quota_headers, namespace_for
from tollway.services import Services
from tollway.state import StateStore, StateUnavailable

RC = TypeVar("RC", bound=LimitRulesConfig[Any, Any])


class KeyRateLimitConfig(LimitRulesConfig[QueryThreshold, QueryLimitKey]):
    """Request limits; ``rule_name`` is optional (counters are per rule without it)."""


class RequestRateLimit(Plugin[RC]):
    """Counts one per request against the counter the request's key selects.

    The decision runs in the request-headers phase, or in the request-body phase when a
    rule keys on the model (which only the body names).
    """

    shared: ClassVar[bool]

    def __init__(self, config: RC, scope: Scope, services: Services) -> None:
        super().__init__(config, scope, services)
        self.rules = LimitRules(config, namespace_for(self.name, config.rule_name, scope))
        self.refusal = Refusal(
            config.rejected_code, config.rejected_msg, f"{self.name}.exceeded", ("retry-after", "x-ratelimit-reset")
        )
        self.show_headers = config.show_limit_quota_header
        self.in_body = self.rules.needs_body
        self.fail_open = fails_open(scope, default_open=True)
        self.store: StateStore = services.state if self.shared else services.local_state

    async def request_headers(self, ex: Exchange) -> Reply | None:
        if not self.in_body:
            await self._admit(ex)
        return None

    async def request_body(self, ex: Exchange) -> Reply | None:
        if self.in_body:
            await self._admit(ex)
        return None

    async def _admit(self, ex: Exchange) -> None:
        hit = self.rules.match(ex)
        if hit is None:
            return
        key, counter = hit
        try:
            took = await self.store.take(key, counter.window_s, counter.limit, 1)
        except StateUnavailable:
            if self.fail_open:
                return
            raise state_unavailable(self.name) from None
        if self.show_headers:
            add_quota_headers(ex, counter.limit, took.used)
        if not took.admitted:
            raise self.refusal.error(took.reset_ms)


class KeyRateLimit(RequestRateLimit[KeyRateLimitConfig]):
    name = "key-rate-limit"
    priority = 10
    config_model = KeyRateLimitConfig
    shared = False


__all__ = ["KeyRateLimit", "KeyRateLimitConfig", "RequestRateLimit"]
