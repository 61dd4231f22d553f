"""ai-quota (default phase, priority 750): each consumer's remaining token quota.

Higress's fields: ``admin_consumer`` (required), ``admin_path`` (default ``/quota``),
``redis_key_prefix`` (default ``chat_quota:``; the quota of consumer X lives under
``<redis_key_prefix>X`` in ``storage.state``), plus ``reserve_output_tokens``.

Calls (POST requests other than the admin endpoints) need a consumer (none → 401
``ai-quota.no_consumer``) with a quota above zero: zero, negative or none → 403
``insufficient_quota``, reason ``ai-quota.exhausted``. An admitted call reserves
``min(estimate, remaining)`` (see ``reservation.py``) and is settled to the
provider's reported usage when it ends, so concurrent calls cannot all spend the same
last tokens. Worst case: the quota ends below zero by at most the sum, over the calls in
flight when the last call was admitted, of ``max(0, spent - reserved)``; with
``max_tokens`` on every call, only by what the last admitted call spends beyond the
remainder it could reserve (docs/limits.md).

Management endpoints on the data plane (any path ending in ``admin_path``, so Higress's
``…/v1/chat/completions/quota`` works too; a route must match the path), for the
consumer named ``admin_consumer`` only (others → 403 ``ai-quota.forbidden``):

    GET  <admin_path>?consumer=NAME                  → {"quota": N, "consumer": NAME}
    POST <admin_path>/refresh  consumer=NAME&quota=N → sets the quota
    POST <admin_path>/delta    consumer=NAME&value=N → adds N (may be negative)

Bad parameters → 400 ``ai-quota.bad_request``; the store unreachable → 503. For calls,
an unreachable store follows ``failure_mode``, ``closed`` by default (503
``ai-quota.state_unavailable``): spending must not go unchecked.

Where the runtime has a database (``services.quota_ledger``, ``tollway.quotas``), it keeps
the truth of every balance: a refresh or delta is written there first (the database
unreachable → 503 ``ai-quota.database_unavailable``, and nothing changed), each call's
spend reaches it in a batch within a second, and a balance the store has lost (a Redis
flushed or restarted empty) is rebuilt from it before the call is decided. A call that
needs a rebuild while the database is unreachable follows ``failure_mode`` too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

import orjson
from pydantic import Field, field_validator

from tollway.consumers.consumer import Consumer
from tollway.errors import BadRequest, Forbidden, GatewayError, Unauthorized
from tollway.exchange import Exchange, Reply, StateKey
from tollway.plugin import Plugin, PluginConfig, Scope
from tollway.plugins.limits.failure_mode import fails_open, state_unavailable
from tollway.plugins.limits.reservation import estimate, refuse_unmetered, route_calls, spent
from tollway.quotas import LedgerUnavailable
from tollway.services import Services
from tollway.state import StateUnavailable

_TEXT = [("content-type", "text/plain; charset=utf-8")]
# Quotas and deltas stay exact everywhere they go: Lua numbers in Redis are doubles.
_MAX_AMOUNT = 2**53 - 1
# A consumer name the database can index (and no control characters to store or log).
_MAX_NAME = 256


class AiQuotaConfig(PluginConfig):
    admin_consumer: str = Field(min_length=1)
    admin_path: str = "/quota"
    redis_key_prefix: str = "chat_quota:"
    # Output tokens to reserve for a call that names no max_tokens.
    reserve_output_tokens: int = Field(256, ge=0)

    @field_validator("admin_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/") or len(v) < 2 or v.endswith("/"):
            raise ValueError("must start with '/' and not end with '/', like /quota")
        return v


@dataclass(slots=True)
class _Reservation:
    key: str
    generation: int
    tokens: int


def _bad(message: str) -> BadRequest:
    return BadRequest(f"Request denied by ai quota check. {message}", reason="ai-quota.bad_request")


def _database_unavailable() -> GatewayError:
    return GatewayError(
        "ai-quota: the quota database is unavailable; try again shortly",
        reason="ai-quota.database_unavailable",
        status=503,
        code="service_unavailable",
        headers=[("retry-after", "1")],
    )


# An integer as the docs say it: ASCII digits, a minus sign at most (``int()`` also took
# "+3", " 3" and other scripts' digits, "٣").
_INTEGER = re.compile(r"-?[0-9]+")


def _amount(params: dict[str, str], field: str) -> int:
    text = params.get(field, "")
    if _INTEGER.fullmatch(text) is None or len(text) > 20:
        raise _bad(f"{field} must be an integer.")
    amount = int(text)
    if abs(amount) > _MAX_AMOUNT:
        raise _bad(f"{field} must be between -{_MAX_AMOUNT} and {_MAX_AMOUNT}.")
    return amount


class AiQuota(Plugin[AiQuotaConfig]):
    name = "ai-quota"
    priority = 750
    config_model = AiQuotaConfig

    def __init__(self, config: AiQuotaConfig, scope: Scope, services: Services) -> None:
        super().__init__(config, scope, services)
        self.fail_open = fails_open(scope, default_open=False)
        self.store = services.state
        self.ledger = services.quota_ledger
        self.prefix = config.redis_key_prefix
        base = config.admin_path
        self.endpoints = (
            (base, "GET", "query"),
            (base + "/refresh", "POST", "refresh"),
            (base + "/delta", "POST", "delta"),
        )
        self._held: StateKey[_Reservation] = StateKey(f"{self.name}.reservation.{id(self):x}")

    async def request_body(self, ex: Exchange) -> Reply | None:
        path = ex.request.path
        for suffix, method, action in self.endpoints:
            if path.endswith(suffix):
                return await self._admin(ex, method, action)
        if ex.request.method != "POST":
            return None
        consumer = self._consumer(ex)
        refuse_unmetered(self.name, ex)
        key = self.prefix + consumer.name
        amount = estimate(ex, self.config.reserve_output_tokens, route_calls(ex, self.scope.providers))
        try:
            took = await self.store.quota_take(key, amount)
            if took.remaining is None and self.ledger is not None:
                # The store has no balance: it lost it (a Redis flushed or restarted
                # empty), or the consumer never had one. The database knows which.
                await self.ledger.restore(key)
                took = await self.store.quota_take(key, amount)
        except StateUnavailable:
            if self.fail_open:
                return None
            raise state_unavailable(self.name) from None
        except LedgerUnavailable:
            if self.fail_open:
                return None
            raise _database_unavailable() from None
        if not took.admitted:
            raise Forbidden(
                "Request denied by ai quota check, No quota left",
                reason="ai-quota.exhausted",
                code="insufficient_quota",
            )
        ex.put(self._held, _Reservation(key, took.generation, took.reserved))
        return None

    async def done(self, ex: Exchange) -> None:
        """Settle the reservation to the provider's reported usage (or its estimate)."""
        held = ex.get(self._held)
        if held is None:
            return
        used = spent(ex, held.tokens)
        if self.ledger is not None:
            # Even when the reservation stands as spent: the database learns of the spend here.
            try:
                await self.ledger.settle(held.key, held.generation, held.tokens, used)
            except (StateUnavailable, LedgerUnavailable):
                pass  # logged and counted where it arose
        elif used != held.tokens:
            try:
                await self.store.quota_settle(held.key, held.generation, held.tokens, used)
            except StateUnavailable:
                pass  # the store logged and counted it

    @staticmethod
    def _consumer(ex: Exchange) -> Consumer:
        if ex.consumer is None:
            raise Unauthorized(
                "Request denied by ai quota check. No Key Authentication information found.",
                reason="ai-quota.no_consumer",
            )
        return ex.consumer

    async def _admin(self, ex: Exchange, method: str, action: str) -> Reply:
        if self._consumer(ex).name != self.config.admin_consumer:
            raise Forbidden(
                "Request denied by ai quota check. Unauthorized admin consumer.", reason="ai-quota.forbidden"
            )
        if ex.request.method != method:
            raise _bad(f"{ex.request.path} takes {method}")
        params = dict(ex.request.query_params)
        if action != "query" and ex.request.body:
            # The form body wins over the query string, as Higress reads the body.
            params.update(parse_qsl(ex.request.body.decode("utf-8", "replace"), keep_blank_values=True))
        name = params.get("consumer", "")
        if not name:
            if (ex.request.body or b"")[:1] in (b"{", b"["):
                raise _bad("consumer can't be empty: the body is a form (consumer=NAME&value=N), not JSON.")
            raise _bad("consumer can't be empty.")
        if len(name) > _MAX_NAME or any(c < " " or c == "\x7f" for c in name):
            raise _bad(f"consumer must be at most {_MAX_NAME} characters, none of them control characters.")
        key = self.prefix + name
        amount = 0 if action == "query" else _amount(params, "quota" if action == "refresh" else "value")
        try:
            if action == "query":
                quota = await (self.ledger.read(key) if self.ledger is not None else self.store.quota_get(key))
                body = orjson.dumps({"quota": quota if quota is not None else 0, "consumer": name})
                return Reply(200, [("content-type", "application/json")], body)
            if self.ledger is not None:
                await (self.ledger.refresh(key, amount) if action == "refresh" else self.ledger.add(key, amount))
            elif action == "refresh":
                await self.store.quota_set(key, amount)
            else:
                await self.store.quota_add(key, amount)
        except StateUnavailable:  # (not the store's own words, its address among them: it logs those)
            raise state_unavailable(self.name) from None
        except LedgerUnavailable:
            raise _database_unavailable() from None
        if self.services.audit is not None:
            field = "quota" if action == "refresh" else "value"
            self.services.audit.note(f"quota.{action}", name, {field: amount}, ex.request.client_ip)
        return Reply(200, list(_TEXT), f"{action} quota successful".encode())


__all__ = ["AiQuota", "AiQuotaConfig"]
