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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from tollway.chain import Chain
from tollway.channel import ClientChannel
from tollway.errors import BadRequest, GatewayError, NotFound, UpstreamError, UpstreamTimeout
from tollway.errors_render import render_stream_error
from tollway.exchange import Attempt, Exchange, StateKey
from tollway.patterns import PatternMap
from tollway.protocols import openai as openai_wire
from tollway.protocols.registry import codec_for
from tollway.protocols.usage import apply_usage, estimate_tokens
from tollway.providers.base import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    JSON_APIS,
    MESSAGES,
    MODELS,
    Provider,
)
from tollway.sse import SseEvent, SseParser
from tollway.translation import PROTOCOL_HEADERS, Translation
from tollway.upstream import (
    ConnectFailed,
    TransportError,
    TransportTimeout,
    UpstreamRequest,
    UpstreamResponse,
)

if TYPE_CHECKING:
    from tollway.routing import Route

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
# Set when the gateway asked for the usage chunk itself, so the client must not see it.
_HIDE_USAGE: StateKey[bool] = StateKey("ai-proxy.hide_usage")


def api_path_of(path: str) -> str:
    """The client's path from ``/v1/`` on, without ``/v1``: ``/chat/completions``."""
    i = path.find("/v1/")
    return path[i + 3 :] if i >= 0 else path


def _failed_over(status: int) -> bool:
    return status == 429 or status >= 500


class RouteProviders:
    """The providers one route can send to, and how the requested model picks one."""

    def __init__(self, route: Route, providers: dict[str, Provider]) -> None:
        self.ordered: tuple[Provider, ...] = tuple(providers[p] for p in route.provider_ids)
        self.by_model = PatternMap(dict(route.model_providers)) if route.model_providers else None
        self._providers = providers

    def for_model(self, model: str | None) -> Sequence[Provider]:
        if self.by_model is not None and model:
            pid = self.by_model.lookup(model)
            if pid is not None:
                chosen = self._providers[pid]
                return (chosen, *(p for p in self.ordered if p is not chosen))
        return self.ordered


class AiProxy:
    def __init__(self, idle_timeout_s: float, drain_s: float = 0.0) -> None:
        self.idle_timeout_s = idle_timeout_s
        # server.abandoned_stream_drain_s: 0 cancels the provider call when the client leaves.
        self.drain_s = drain_s

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
            await self._list_models(ex, client, route_providers, respond_headers)
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
            self._estimate_output(ex, 0)
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
                ex.put(_HIDE_USAGE, True)
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
        named = ",".join(ex.request.headers.get_all("connection")).lower()
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
            await self._relay_stream(ex, chain, client, resp, translation)
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
                    _take_model(ex, answer)
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
            _take_model(ex, pivot)
        return out

    async def _relay_stream(
        self,
        ex: Exchange,
        chain: Chain,
        client: ClientChannel,
        resp: UpstreamResponse,
        translation: Translation | None = None,
    ) -> None:
        if translation is not None:
            await self._relay_translated_stream(ex, chain, client, resp, translation)
            return
        parser = SseParser()
        hide_usage = ex.get(_HIDE_USAGE) is True
        rewrite = chain.rewrites_stream
        out_chars = 0
        try:
            async for chunk in resp.chunks():
                out: list[bytes] = []
                for event in parser.feed(chunk):
                    raw = event.raw
                    if b'"usage"' in raw or b'"choices"' in raw or b'"delta"' in raw:
                        obj = event.json()
                        if isinstance(obj, dict):
                            _take_usage(ex, obj)
                            out_chars += openai_wire.content_chars(obj)
                            if hide_usage and openai_wire.is_usage_only_chunk(obj):
                                continue
                    if rewrite:
                        out.extend(e.raw for e in chain.stream_event(ex, event))
                    else:
                        out.append(raw)
                if out:
                    if ex.ttft_ms is None:
                        ex.ttft_ms = ex.elapsed_ms()
                    await client.write(b"".join(out))
            tail = [e.raw for ev in parser.flush() for e in (chain.stream_event(ex, ev) if rewrite else [ev])]
            if rewrite:
                tail.extend(e.raw for e in chain.stream_end(ex))
            await client.finish(b"".join(tail))
        except TransportError as exc:
            await self._stream_failed(ex, client, exc, out_chars)
        except asyncio.CancelledError:
            # The client left mid-stream. The provider bills the whole answer anyway, so
            # read the rest of it (bounded) for the usage it reports; estimate only when
            # that fails too.
            complete = False
            if self.drain_s and not ex.usage.reported:
                complete = await _drain(resp, parser, lambda event: _event_usage(ex, event), self.drain_s)
            if not complete:
                self._estimate_output(ex, out_chars)
            raise

    async def _relay_translated_stream(
        self, ex: Exchange, chain: Chain, client: ClientChannel, resp: UpstreamResponse, translation: Translation
    ) -> None:
        """Native events → pivot chunks (usage read here) → the client's events."""
        parser = SseParser()
        rewrite = chain.rewrites_stream
        out_chars = 0

        def on_chunk(chunk: dict[str, Any]) -> None:
            nonlocal out_chars
            usage = chunk.get("usage")
            if usage is not None and apply_usage(ex.usage, usage):
                _take_model(ex, chunk)
            out_chars += openai_wire.content_chars(chunk)

        stream = translation.stream(on_chunk)

        def to_client(events: list[SseEvent]) -> list[bytes]:
            if rewrite:
                return [e.raw for ev in events for e in chain.stream_event(ex, ev)]
            return [ev.raw for ev in events]

        try:
            async for chunk in resp.chunks():
                out: list[bytes] = []
                for event in parser.feed(chunk):
                    out.extend(to_client(stream.feed(event)))
                if out:
                    if ex.ttft_ms is None:
                        ex.ttft_ms = ex.elapsed_ms()
                    await client.write(b"".join(out))
            tail = [raw for event in parser.flush() for raw in to_client(stream.feed(event))]
            tail.extend(to_client(stream.end()))
            if rewrite:
                tail.extend(e.raw for e in chain.stream_end(ex))
            await client.finish(b"".join(tail))
        except TransportError as exc:
            stream.broke()  # keeps the tokens the provider reported so far (SPEC §4)
            await self._stream_failed(ex, client, exc, out_chars)
        except asyncio.CancelledError:
            # As in _relay_stream: read the rest for its usage (on_chunk takes it).
            sent_chars = out_chars  # what the drain reads next never reached the client
            complete = False
            if self.drain_s and not ex.usage.reported:
                complete = await _drain(resp, parser, stream.feed, self.drain_s)
            if not complete:
                self._estimate_output(ex, sent_chars)
            raise

    async def _stream_failed(self, ex: Exchange, client: ClientChannel, exc: TransportError, out_chars: int) -> None:
        """The provider failed after the answer began: an error event ends the stream."""
        err = translate(exc, ex.provider or "")
        ex.fail(err)
        ex.status = err.status
        self._estimate_output(ex, out_chars)
        await client.finish(render_stream_error(err, ex.client_protocol))

    @staticmethod
    def _estimate_output(ex: Exchange, out_chars: int) -> None:
        """Tokens for an answer that did not run to its end. Nothing reported: estimate
        both sides. Reported only in part (Anthropic's ``message_start`` counts the
        output so far as 1): keep the input, and raise the output to what the client
        was sent if that is more."""
        usage = ex.usage
        if not usage.reported:
            if not usage.estimated:
                usage.output_tokens = estimate_tokens(out_chars)
                usage.input_tokens = estimate_tokens(len(ex.request.body or b""))
                usage.estimated = True
            return
        sent = estimate_tokens(out_chars)
        if sent > usage.output_tokens:
            usage.output_tokens = sent
            usage.estimated = True

    async def _list_models(
        self, ex: Exchange, client: ClientChannel, route_providers: RouteProviders, respond_headers: Any
    ) -> None:
        ids: list[str] = []
        for provider in route_providers.ordered:
            ids.extend(await self._provider_models(ex, provider))
            ids.extend(provider.model_names())
        if route_providers.by_model is not None:
            ids.extend(route_providers.by_model.names())
        seen: set[str] = set()
        unique = [i for i in ids if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]
        if ex.consumer is not None:
            unique = [i for i in unique if ex.consumer.may_use(i)]
        body = openai_wire.model_list(unique)
        ex.status = 200
        await respond_headers(200, [("content-type", "application/json"), ("content-length", str(len(body)))])
        await client.finish(body)

    async def _provider_models(self, ex: Exchange, provider: Provider) -> list[str]:
        """The provider's own list; a provider that cannot list models contributes nothing."""
        token = provider.pick_token()
        endpoint = provider.models_endpoint(token[1] if token else None)
        if endpoint is None:
            return []
        req = UpstreamRequest("GET", endpoint.url, list(endpoint.headers), b"", provider.timeout_s, self.idle_timeout_s)
        t0 = time.perf_counter()
        try:
            resp = await provider.transport.send(req)
            try:
                body = await resp.read() if resp.status == 200 else b""
            finally:
                await resp.aclose()
        except TransportError as exc:
            ex.attempts.append(
                Attempt(
                    provider.id, 504 if isinstance(exc, TransportTimeout) else 502, (time.perf_counter() - t0) * 1000
                )
            )
            return []
        ex.attempts.append(Attempt(provider.id, resp.status, (time.perf_counter() - t0) * 1000))
        try:
            listing = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            return []
        return codec_for(provider.protocol).model_ids(listing) if listing is not None else []


def _take_model(ex: Exchange, obj: dict[str, Any]) -> None:
    model = obj.get("model")
    if isinstance(model, str) and model:
        ex.model_reported = model


def _take_usage(ex: Exchange, obj: dict[str, Any]) -> None:
    """The usage (and the model named beside it) in one decoded stream event: OpenAI's
    usage chunk, Anthropic's ``message_start`` and ``message_delta``."""
    u = obj.get("usage")
    if u is not None and apply_usage(ex.usage, u):
        _take_model(ex, obj)
    msg = obj.get("message")
    if isinstance(msg, dict) and msg.get("usage") is not None and apply_usage(ex.usage, msg["usage"]):
        _take_model(ex, msg)


def _event_usage(ex: Exchange, event: SseEvent) -> None:
    if b'"usage"' in event.raw:
        obj = event.json()
        if isinstance(obj, dict):
            _take_usage(ex, obj)


async def _drain(
    resp: UpstreamResponse, parser: SseParser, on_event: Callable[[SseEvent], object], limit_s: float
) -> bool:
    """Read the rest of a stream nobody receives any more, handing each event to
    ``on_event`` (which keeps its usage; what it returns is dropped). True when the
    stream was read to its end.

    Runs after the task was cancelled once (the client left); a second cancel (a
    shutdown past its timeout), the limit, or a transport failure just ends it."""
    try:
        async with asyncio.timeout(limit_s):
            async for chunk in resp.chunks():
                for event in parser.feed(chunk):
                    on_event(event)
            for event in parser.flush():
                on_event(event)
    except (TimeoutError, TransportError, asyncio.CancelledError):
        return False
    return True


def translate(exc: TransportError, provider_id: str) -> GatewayError:
    """Transport failures as the client sees them; the provider is named, never its URL."""
    if isinstance(exc, TransportTimeout):
        return UpstreamTimeout(f"provider {provider_id!r} timed out: {exc}", reason="ai-proxy.upstream_timeout")
    if isinstance(exc, ConnectFailed):
        return UpstreamError(f"provider {provider_id!r} is unreachable: {exc}", reason="ai-proxy.upstream_unreachable")
    return UpstreamError(f"provider {provider_id!r} failed: {exc}", reason="ai-proxy.bad_upstream_response")
