"""``GET /v1/models``: what a route's providers serve, as this consumer may see it; and
``GET /v1/models/{id}``, which the provider serving the model answers.

Anthropic's list is paged (``limit``, default 20, at most 1000; ``after_id``,
``before_id``), and its SDK pages through it; OpenAI's is one page.
"""

from __future__ import annotations

import time

import orjson

from tollway.errors import NotFound
from tollway.exchange import Attempt, Exchange, Reply
from tollway.protocols.openai import wire as openai_wire
from tollway.protocols.registry import codec_for
from tollway.providers.base import Provider
from tollway.providers.errors import translate
from tollway.proxy import upstream_request
from tollway.proxy.provider_choice import RouteProviders
from tollway.upstream import TransportError, TransportTimeout, UpstreamRequest

# The list says nothing of when a model was made; Anthropic's shape wants a time.
_UNKNOWN_TIME = "1970-01-01T00:00:00Z"
_DEFAULT_PAGE = 20
_MAX_PAGE = 1000


def _page_size(raw: str | None) -> int:
    try:
        size = int(raw) if raw is not None else _DEFAULT_PAGE
    except ValueError:
        size = _DEFAULT_PAGE
    return min(max(size, 1), _MAX_PAGE)


def anthropic_model_list(ids: list[str], query: dict[str, str]) -> bytes:
    """One page of Anthropic's ``GET /v1/models`` shape: ``limit`` models after
    ``after_id`` (or before ``before_id``); an id not in the list starts from the top."""
    limit = _page_size(query.get("limit"))
    if "before_id" in query:
        end = ids.index(query["before_id"]) if query["before_id"] in ids else len(ids)
        start = max(end - limit, 0)
        has_more = start > 0
    else:
        after = query.get("after_id")
        start = ids.index(after) + 1 if after in ids else 0
        end = min(start + limit, len(ids))
        has_more = end < len(ids)
    page = ids[start:end]
    data = [{"type": "model", "id": i, "display_name": i, "created_at": _UNKNOWN_TIME} for i in page]
    return orjson.dumps(
        {
            "data": data,
            "has_more": has_more,
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        }
    )


class ModelListing:
    def __init__(self, idle_timeout_s: float) -> None:
        self.idle_timeout_s = idle_timeout_s

    async def answer(self, ex: Exchange, route_providers: RouteProviders) -> Reply:
        """The route's providers' own lists, plus the non-wildcard mapping keys, filtered
        by the consumer's ``allow_models`` (SPEC §4, §9); in Anthropic's list shape for a
        client that sends ``anthropic-version`` (Anthropic's SDK), else OpenAI's."""
        ids: list[str] = []
        for provider in route_providers.every:
            ids.extend(await self._provider_models(ex, provider))
            ids.extend(provider.model_names())
        if route_providers.by_model is not None:
            ids.extend(route_providers.by_model.names())
        seen: set[str] = set()
        unique = [i for i in ids if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]
        if ex.consumer is not None:
            unique = [i for i in unique if ex.consumer.may_use(i)]
        if "anthropic-version" in ex.request.headers:
            body = anthropic_model_list(unique, dict(ex.request.query_params))
        else:
            body = openai_wire.model_list(unique)
        return Reply(200, [("content-type", "application/json")], body)

    @staticmethod
    def take_details_model(ex: Exchange, model: str) -> None:
        """``GET /v1/models/{model}`` names its model: recorded, routed by it, and held to
        the consumer's ``allow_models`` as the list is: a model the consumer may not use
        is one it cannot see (404, as OpenAI answers a model one has no access to)."""
        ex.model_requested = model
        if ex.consumer is not None and not ex.consumer.may_use(model):
            raise NotFound(
                f"The model {model!r} does not exist or you do not have access to it.",
                reason="ai-proxy.no_model",
                code="model_not_found",
            )

    async def _provider_models(self, ex: Exchange, provider: Provider) -> list[str]:
        """The provider's own list; a provider that cannot list models contributes nothing."""
        token = provider.pick_token()
        endpoint = provider.models_endpoint(token[1] if token else None)
        if endpoint is None:
            return []
        headers = list(endpoint.headers)
        trace = ex.trace
        span_id = upstream_request.trace_context(trace, provider, headers) if trace is not None else 0
        req = UpstreamRequest("GET", endpoint.url, headers, b"", provider.timeout_s, self.idle_timeout_s)
        t0 = time.perf_counter()
        try:
            resp = await provider.transport.send(req)
            try:
                body = await resp.read() if resp.status == 200 else b""
            finally:
                await resp.aclose()
        except TransportError as exc:
            status = 504 if isinstance(exc, TransportTimeout) else 502
            reason = translate(exc, provider.id).reason
            ex.attempts.append(Attempt(provider.id, status, (time.perf_counter() - t0) * 1000, t0, span_id, reason))
            return []
        ex.attempts.append(Attempt(provider.id, resp.status, (time.perf_counter() - t0) * 1000, t0, span_id))
        try:
            listing = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            return []
        return codec_for(provider.protocol).model_ids(listing) if listing is not None else []
