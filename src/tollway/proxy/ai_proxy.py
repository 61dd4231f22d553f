"""ai-proxy: what a route's provider does, as the terminal step after the plugin chain.

OpenAI-style requests go to the provider's API root plus the client's path after
``/v1``, with the provider's credential in place of the client's. Answers come back
as they arrive: streams event by event, never buffered. Every provider call is one
``Attempt`` on the exchange; the next provider in the route's list is tried on connect
errors, 429 and 5xx, but only before any byte has gone to the client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from tollway.chain import Chain
from tollway.gateway.channel import ClientChannel
from tollway.errors import BadRequest, GatewayError, NotFound, UpstreamTimeout
from tollway.exchange import Attempt, Exchange
from tollway.proxy.models import ModelListing
from tollway.protocols.usage import apply_usage
from tollway.proxy.provider_errors import translate
from tollway.providers.base import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    JSON_APIS,
    MESSAGES,
    MODELS,
    Provider,
)
from tollway.proxy.provider_choice import RouteProviders
from tollway.proxy.stream import HIDE_USAGE, StreamRelay, estimate_unfinished, take_model
from tollway.proxy.translation import PROTOCOL_HEADERS, Translation
from tollway.upstream import (
    TransportError,
    TransportTimeout,
    UpstreamRequest,
    UpstreamResponse,
)

if TYPE_CHECKING:
    pass

# Never forwarded to a provider: hop-by-hop headers, what the transport sets itself,
# and every header a client credential may ride in (the provider's own auth replaces it).
_DROP_REQUEST = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "accept-encoding",
        "expect",
        "x-mse-consumer",
        "authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "x-request-id",
    }
)
_DROP_RESPONSE = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "date",
        "server",
    }
)
_MODEL_REQUIRED = (CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES)


def api_path_of(path: str) -> str:
    """The client's path from ``/v1/`` on, without ``/v1``: ``/chat/completions``."""
    i = path.find("/v1/")
    return path[i + 3 :] if i >= 0 else path


def _failed_over(status: int) -> bool:
    return status == 429 or status >= 500


class AiProxy:
    def __init__(self, idle_timeout_s: float, drain_s: float = 0.0) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.models = ModelListing(idle_timeout_s)
        self.streams = StreamRelay(drain_s)

    async def serve(
        self, ex: Exchange, chain: Chain, client: ClientChannel, route_providers: RouteProviders, respond_headers: Any
    ) -> None:
        req = ex.request
        api = api_path_of(req.path)
        ex.api = api
        body_obj: dict[str, Any] | None = None
        if req.method == "POST" and api in JSON_APIS:
            parsed = req.json()
            if not isinstance(parsed, dict):
                raise BadRequest("request body must be a JSON object", reason="gateway.bad_request")
            body_obj = ex.upstream_json if ex.upstream_json is not None else parsed
            model = body_obj.get("model")
            if api in _MODEL_REQUIRED and (not isinstance(model, str) or not model):
                raise BadRequest("you must provide a model parameter", reason="gateway.bad_request")
            ex.stream = body_obj.get("stream") is True
        if ex.model_requested is None and body_obj is not None and isinstance(body_obj.get("model"), str):
            ex.model_requested = body_obj["model"]
        if req.method == "GET" and api == MODELS:
            await self.models.answer(ex, client, route_providers, respond_headers)
            return
        candidates = route_providers.for_model(ex.model_requested)
        if not candidates:
            raise NotFound(
                f"no provider serves model {ex.model_requested!r}", reason="ai-proxy.no_model", code="model_not_found"
            )
        try:
            await self._serve_from(ex, chain, client, candidates, body_obj, api, respond_headers)
        except asyncio.CancelledError:
            # The client left before an answer with usage: bill an estimate.
            estimate_unfinished(ex, 0)
            raise

    async def _serve_from(
        self,
        ex: Exchange,
        chain: Chain,
        client: ClientChannel,
        candidates: Sequence[Provider],
        body_obj: dict[str, Any] | None,
        api: str,
        respond_headers: Any,
    ) -> None:
        last_error: GatewayError | None = None
        for i, provider in enumerate(candidates):
            is_last = i == len(candidates) - 1
            retries = provider.retries
            for attempt in range(retries + 1):
                may_retry = attempt < retries
                try:
                    resp, translation = await self._call(ex, provider, body_obj, api)
                except UpstreamTimeout:
                    raise  # a provider that went silent is not retried: the client has waited enough
                except GatewayError as err:
                    last_error = err
                    if may_retry:
                        continue
                    if is_last:
                        raise
                    break
                if may_retry and provider.retries_on(resp.status):
                    # retryOnFailure: the same provider again, with its next token.
                    await resp.aclose()
                    continue
                if _failed_over(resp.status) and not is_last:
                    await resp.aclose()
                    break
                try:
                    await self._relay(ex, chain, client, resp, respond_headers, translation)
                finally:
                    await resp.aclose()
                return
        assert last_error is not None
        raise last_error

    def _upstream_body(self, ex: Exchange, provider: Provider, body_obj: dict[str, Any] | None) -> bytes:
        raw = ex.request.body or b""
        if body_obj is None:
            return raw
        changed = ex.upstream_json is not None
        if ex.model_requested:
            mapped = provider.map_model(ex.model_requested)
            ex.model_upstream = mapped
            if mapped != ex.model_requested:
                body_obj = {**body_obj, "model": mapped}
                changed = True
        if ex.stream and ex.api in (CHAT, COMPLETIONS):
            opts = body_obj.get("stream_options")
            if not (isinstance(opts, dict) and opts.get("include_usage") is True):
                # Ask for the usage chunk so the call can be billed; hide it from a
                # client that did not ask (see _relay_stream).
                body_obj = {
                    **body_obj,
                    "stream_options": {**(opts if isinstance(opts, dict) else {}), "include_usage": True},
                }
                ex.put(HIDE_USAGE, True)
                changed = True
        return orjson.dumps(body_obj) if changed else raw

    def _upstream_headers(
        self, ex: Exchange, auth: Sequence[tuple[str, str]], translated: bool = False
    ) -> list[tuple[str, str]]:
        drop = _DROP_REQUEST | ex.strip_headers if ex.strip_headers else _DROP_REQUEST
        if translated:
            drop = drop | PROTOCOL_HEADERS
        if auth:
            # The provider's own headers (claude's anthropic-version beside its key) replace
            # a client's header of the same name; two values would reach the provider.
            drop = drop | {k for k, _ in auth}
        # Most clients send no Connection header: one dict lookup, no list scan.
        named = ",".join(ex.request.headers.get_all("connection")).lower() if "connection" in ex.request.headers else ""
        if named and named not in ("keep-alive", "close"):
            # Headers the client names in Connection are hop-by-hop too (RFC 9110 §7.6.1).
            drop = drop | {n.strip() for n in named.split(",")}
        headers = [(k, v) for k, v in ex.request.headers if k not in drop]
        headers.extend(ex.upstream_headers)
        headers.extend(auth)
        return headers

    def _query(self, ex: Exchange) -> str:
        if not ex.strip_params or not ex.request.query:
            return ex.request.query
        from urllib.parse import urlencode

        return urlencode([(k, v) for k, v in ex.request.query_params if k not in ex.strip_params])

    async def _call(
        self, ex: Exchange, provider: Provider, body_obj: dict[str, Any] | None, api: str
    ) -> tuple[UpstreamResponse, Translation | None]:
        ex.provider = provider.id
        token = provider.pick_token()
        secret = token[1] if token else None
        translation = Translation.for_call(api, provider, body_obj)
        if translation is None:
            body = self._upstream_body(ex, provider, body_obj)
            endpoint = provider.endpoint(api, self._query(ex), secret, model=ex.model_upstream)
        else:
            ex.model_upstream = provider.map_model(ex.model_requested or "")
            body = translation.request(ex.model_upstream)
            endpoint = provider.chat_endpoint(ex.model_upstream, ex.stream, secret)
        upstream = UpstreamRequest(
            method=ex.request.method,
            url=endpoint.url,
            headers=self._upstream_headers(ex, endpoint.headers, translation is not None),
            body=body,
            headers_timeout=provider.timeout_s,
            idle_timeout=self.idle_timeout_s,
        )
        t0 = time.perf_counter()
        try:
            resp = await provider.transport.send(upstream)
        except TransportError as exc:
            status = 504 if isinstance(exc, TransportTimeout) else 502
            ex.attempts.append(Attempt(provider.id, status, (time.perf_counter() - t0) * 1000))
            raise translate(exc, provider.id) from None
        ex.attempts.append(Attempt(provider.id, resp.status, (time.perf_counter() - t0) * 1000))
        if token is not None and resp.status in (401, 429):
            provider.rest_token(token[0])
        return resp, translation

    async def _relay(
        self,
        ex: Exchange,
        chain: Chain,
        client: ClientChannel,
        resp: UpstreamResponse,
        respond_headers: Any,
        translation: Translation | None,
    ) -> None:
        headers = [(k, v) for k, v in resp.headers if k not in _DROP_RESPONSE]
        await chain.response_headers(ex, resp.status, headers)
        ex.status = resp.status
        ctype = next((v for k, v in headers if k == "content-type"), "")
        if resp.status == 200 and ctype.startswith("text/event-stream"):
            await respond_headers(resp.status, headers)
            await self.streams.relay(ex, chain, client, resp, translation)
            return
        try:
            body = await resp.read()
        except TransportError as exc:
            raise translate(exc, ex.provider or "") from None
        if translation is not None:
            body = self._translate_body(ex, translation, resp.status, body)
            headers = [(k, v) for k, v in headers if k != "content-type"] + [("content-type", "application/json")]
        elif resp.status < 300 and ctype.startswith("application/json"):
            try:
                answer = orjson.loads(body)
                if apply_usage(ex.usage, answer.get("usage")):
                    take_model(ex, answer)
            except (orjson.JSONDecodeError, AttributeError):
                pass
        body = await chain.response_body(ex, body)
        headers.append(("content-length", str(len(body))))
        await respond_headers(resp.status, headers)
        await client.finish(body)

    @staticmethod
    def _translate_body(ex: Exchange, translation: Translation, status: int, body: bytes) -> bytes:
        if status >= 400:
            return translation.error(status, body)
        out, pivot = translation.response(body)
        if pivot is not None and apply_usage(ex.usage, pivot.get("usage")):
            take_model(ex, pivot)
        return out
