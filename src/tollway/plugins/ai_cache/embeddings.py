"""The semantic cache's embeddings call: a prompt's vector from a configured provider.

The call goes to the provider's OpenAI-style ``/embeddings`` with its own credential and
timeout, on behalf of the client's call, and is recorded as a call of its own (api
``embeddings``, the same route and consumer, its own tokens and price) through the
client call's ``side_calls``. A call that fails, or answers without a vector, costs the
lookup only: the semantic cache then finds nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from tollway.cache.vectors import Vector, unit
from tollway.errors import GatewayError
from tollway.exchange import Attempt, Exchange, Request
from tollway.headers import Headers
from tollway.protocols.apis import EMBEDDINGS
from tollway.protocols.usage import apply_usage
from tollway.providers.base import Provider
from tollway.services import SideCallSpend
from tollway.upstream import TransportError, UpstreamRequest, read_decoded

log = logging.getLogger("tollway.plugins.ai_cache")
_WARN_EVERY_S = 60.0


class Embedder:
    """Embeds prompts with ``model`` through ``provider`` (see the module)."""

    def __init__(self, provider: Provider, model: str, spend: SideCallSpend | None = None) -> None:
        self.provider = provider
        self.model = model
        self.upstream_model = provider.map_model(model)
        self.spend = spend
        self._warned = -_WARN_EVERY_S

    async def embed(self, ex: Exchange, text: str) -> Vector | None:
        """``text``'s unit vector, or None; the call is added to ``ex.side_calls``. A
        consumer's budget holds the call like any (``spend``) and counts what it cost as
        soon as it ends; a budget that refuses it (spent, or the model unpriced) leaves
        the call unmade and the semantic cache finding nothing."""
        body = orjson.dumps({"model": self.upstream_model, "input": text, "encoding_format": "float"})
        call = self._side_call(ex, body)
        spend = self.spend if call.consumer is not None else None
        if spend is not None:
            try:
                await spend.admit_side_call(call, self.upstream_model)
            except GatewayError as refused:
                self._warn(f"a budget refused the embeddings call ({refused.reason})")
                return None
        if ex.side_calls is None:
            ex.side_calls = []
        ex.side_calls.append(call)
        try:
            return await self._call(call, body)
        finally:
            if spend is not None:
                await spend.settle_side_call(call)

    async def _call(self, call: Exchange, body: bytes) -> Vector | None:
        provider = self.provider
        token = provider.pick_token()
        endpoint = provider.endpoint(EMBEDDINGS, "", token[1] if token else None, model=self.upstream_model)
        request = UpstreamRequest(
            "POST",
            endpoint.url,
            [("content-type", "application/json"), *endpoint.headers],
            body,
            headers_timeout=provider.timeout_s,
            idle_timeout=provider.timeout_s,
        )
        t0 = call.started = time.perf_counter()
        try:
            resp = await provider.transport.send(request)
            try:
                answer = await read_decoded(resp)
            finally:
                await resp.aclose()
        except TransportError as exc:
            call.attempts.append(Attempt(provider.id, 502, (time.perf_counter() - t0) * 1000, t0))
            call.status, call.reason, call.ended = 502, "ai-cache.embeddings_failed", time.perf_counter()
            self._warn(f"the embeddings call to provider {provider.id!r} failed: {type(exc).__name__}")
            return None
        call.ended = time.perf_counter()
        call.attempts.append(Attempt(provider.id, resp.status, (call.ended - t0) * 1000, t0))
        call.status = resp.status
        if token is not None and resp.status in (401, 429):
            provider.rest_token(token[0])
        if resp.status != 200:
            call.reason = "ai-cache.embeddings_failed"
            self._warn(f"provider {provider.id!r} answered the embeddings call with {resp.status}")
            return None
        vector = self._vector(call, answer)
        if vector is None:
            call.reason = "ai-cache.embeddings_failed"
            self._warn(f"provider {provider.id!r} answered the embeddings call without a vector")
        return vector

    def _side_call(self, ex: Exchange, body: bytes) -> Exchange:
        """The embeddings call's own exchange (its body, for a budget's estimate),
        recorded when the client's call ends."""
        req = ex.request
        mirror = Request("POST", req.path, "", Headers(()), req.client_ip, req.host, body=body)
        call = Exchange(request_id=f"{ex.request_id}.embeddings", request=mirror)
        call.route, call.consumer, call.api = ex.route, ex.consumer, "embeddings"
        call.provider, call.model_requested, call.model_upstream = self.provider.id, self.model, self.upstream_model
        return call

    @staticmethod
    def _vector(call: Exchange, answer: bytes) -> Vector | None:
        try:
            parsed: Any = orjson.loads(answer)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(parsed, dict):
            return None
        apply_usage(call.usage, parsed.get("usage"))
        data = parsed.get("data")
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
        values = first.get("embedding")
        if not isinstance(values, list) or not all(isinstance(v, int | float) for v in values):
            return None
        return unit(values)

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._warned >= _WARN_EVERY_S:
            self._warned = now
            log.warning("ai-cache: %s; the semantic cache finds nothing meanwhile", message)


__all__ = ["Embedder"]
