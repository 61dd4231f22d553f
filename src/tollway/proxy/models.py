"""``GET /v1/models``: what a route's providers serve, as this consumer may see it; and
``GET /v1/models/{id}``, which the provider serving the model answers.

Anthropic's list is paged (``limit``, default 20, at most 1000; ``after_id``,
``before_id``), and its SDK pages through it; so is Gemini's (``pageSize``, default 50,
``pageToken``, ``nextPageToken``); OpenAI's is one page.
"""

from __future__ import annotations

import time
from typing import Literal

import orjson

from tollway.errors import NotFound
from tollway.exchange import Attempt, Exchange, Reply
from tollway.providers.base import Provider
from tollway.providers.errors import translate
from tollway.proxy import upstream_request
from tollway.proxy.model_cards import ModelCard, anthropic_model, card_of, cards_of, gemini_model, openai_model
from tollway.proxy.provider_choice import RouteProviders
from tollway.upstream import TransportError, TransportTimeout, UpstreamRequest, read_decoded

_DEFAULT_PAGE = 20
_MAX_PAGE = 1000


def _page_size(raw: str | None, default: int = _DEFAULT_PAGE) -> int:
    try:
        size = int(raw) if raw else default
    except ValueError:
        size = default
    return min(max(size, 1), _MAX_PAGE)


def anthropic_model_list(cards: list[ModelCard], query: dict[str, str]) -> bytes:
    """One page of Anthropic's ``GET /v1/models`` shape: ``limit`` models after
    ``after_id`` (or before ``before_id``); an id not in the list starts from the top."""
    ids = [c.id for c in cards]
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
    data = [anthropic_model(c) for c in cards[start:end]]
    return orjson.dumps(
        {
            "data": data,
            "has_more": has_more,
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        }
    )


# Google's pages: 50 models unless ``pageSize`` says otherwise, at most 1000.
_GEMINI_PAGE = 50
# What a model named by a Gemini provider's mapping can be asked through the gateway.
_GEMINI_METHODS = ("generateContent", "countTokens")

Shape = Literal["openai", "anthropic", "gemini"]


def client_shape(ex: Exchange) -> Shape:
    """The list shape the client reads: Anthropic's for a client sending
    ``anthropic-version`` (its SDK), Google's for a client of Gemini's own API (its path
    under Google's version root, or Google's SDK header), else OpenAI's."""
    headers = ex.request.headers
    if "anthropic-version" in headers:
        return "anthropic"
    if ex.dialect == "gemini" or "x-goog-api-client" in headers:
        return "gemini"
    return "openai"


def gemini_model_list(cards: list[ModelCard], query: dict[str, str]) -> bytes:
    """One page of Gemini's ``GET /v1beta/models``: ``pageSize`` models from the one
    ``pageToken`` names (the token is the id of the page's first model; one not in the
    list starts from the top), and ``nextPageToken`` while more follow."""
    size = _page_size(query.get("pageSize"), _GEMINI_PAGE)
    ids = [c.id for c in cards]
    token = query.get("pageToken")
    start = ids.index(token) if token in ids else 0
    end = min(start + size, len(ids))
    page: dict[str, object] = {"models": [gemini_model(c) for c in cards[start:end]]}
    if end < len(ids):
        page["nextPageToken"] = ids[end]
    return orjson.dumps(page)


def _mapped(provider: Provider, name: str) -> ModelCard:
    """A model a provider's ``modelMapping`` names: to a Gemini client, callable where
    the provider speaks Gemini's protocol."""
    if provider.protocol != "gemini":
        return ModelCard(name)
    return ModelCard(
        name,
        gemini={"name": f"models/{name}", "displayName": name, "supportedGenerationMethods": list(_GEMINI_METHODS)},
    )


class ModelListing:
    def __init__(self, idle_timeout_s: float) -> None:
        self.idle_timeout_s = idle_timeout_s

    async def answer(self, ex: Exchange, route_providers: RouteProviders) -> Reply:
        """The route's providers' own lists, plus the non-wildcard mapping keys, filtered
        by the consumer's ``allow_models`` (SPEC §4, §9); in Anthropic's list shape for a
        client that sends ``anthropic-version`` (Anthropic's SDK), else OpenAI's."""
        cards: list[ModelCard] = []
        for provider in route_providers.every:
            cards.extend(await self._provider_models(ex, provider))
            cards.extend(_mapped(provider, name) for name in provider.model_names())
        if route_providers.by_model is not None:
            cards.extend(ModelCard(name) for name in route_providers.by_model.names())
        first: dict[str, ModelCard] = {}
        for card in cards:
            first.setdefault(card.id, card)  # a model two providers list: the first's card
        unique = list(first.values())
        if ex.consumer is not None:
            unique = [c for c in unique if ex.consumer.may_use(c.id)]
        shape = client_shape(ex)
        if shape == "anthropic":
            body = anthropic_model_list(unique, dict(ex.request.query_params))
        elif shape == "gemini":
            body = gemini_model_list(unique, dict(ex.request.query_params))
        else:
            body = orjson.dumps({"object": "list", "data": [openai_model(c) for c in unique]})
        return Reply(200, [("content-type", "application/json")], body)

    @staticmethod
    def details_in_client_shape(ex: Exchange, provider: Provider, reply: Reply) -> Reply:
        """A provider's ``GET /v1/models/{id}`` answer in the shape its client reads (the
        one the list gave it), when the provider speaks another protocol."""
        shape = client_shape(ex)
        if reply.status != 200 or reply.events is not None or provider.protocol == shape:
            return reply
        try:
            card = card_of(provider.protocol, orjson.loads(reply.body))
        except orjson.JSONDecodeError:
            return reply
        if card is None:
            return reply
        shaped = {"anthropic": anthropic_model, "gemini": gemini_model, "openai": openai_model}[shape](card)
        headers = [(k, v) for k, v in reply.headers if k.lower() not in ("content-type", "content-length")]
        return Reply(200, [*headers, ("content-type", "application/json")], orjson.dumps(shaped))

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

    async def _provider_models(self, ex: Exchange, provider: Provider) -> list[ModelCard]:
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
                body = await read_decoded(resp) if resp.status == 200 else b""
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
        return cards_of(provider.protocol, listing) if listing is not None else []
