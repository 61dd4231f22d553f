"""ai-cache (default phase, priority 5): answers a request again from a stored answer.

Runs last of the plugins (Higress puts it in AUTHN at 10): the key is the request as
the model would see it, after every plugin that rewrites it (ai-data-masking,
ai-prompt-template, ai-prompt-decorator), and limits still count a hit as a request
(token limits and quotas charge it nothing: no provider reported any usage).

The request hook hashes the request once (``key.py``) and looks the key up: an exact
entry first, then, with ``semantic``, the nearest stored prompt of the same partition.
A hit answers at once (``answers.py``): status 200, ``x-tollway-cache: hit``, in the
client's API and shape, the record saying ``hit`` or ``semantic`` with the stored
tokens and cost 0. A miss goes on to the provider with ``x-tollway-cache: miss``; the
stream hooks keep a stream's events as they pass (bounded by ``max_bytes``; a whole body
is read off the exchange, ``Exchange.reply_body``), and the ``done`` hook stores the
answer once the call is over, only if it was a complete 200: a whole body, or a stream
whose last event reached the client (a stream the provider broke off,
an error, a client that left: never stored).

The client's ``Cache-Control: no-cache`` skips the lookup (recorded ``skip``),
``no-store`` the store; Higress's ``x-higress-skip-ai-cache: on`` both. Calls of other
APIs, of other methods, asking for several choices (``n`` > 1), or with no question to
key on, pass untouched (no header, no record field).

A state store that does not answer is a miss (``failure_mode: closed`` makes it a 503);
the database or the embeddings provider failing is a miss too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from tollway.cache import CacheStores, MemoryAnswers
from tollway.cache.entry import StoredAnswer, UnusableAnswer
from tollway.errors import BadRequest, GatewayError
from tollway.exchange import CacheOutcome, Exchange, Reply, StateKey
from tollway.plugin import Phase, Plugin, Scope
from tollway.plugins.ai_cache.answers import complete, finished, reply_of
from tollway.plugins.ai_cache.config import AiCacheConfig
from tollway.plugins.ai_cache.key import CacheKey, cache_key
from tollway.plugins.limits.failure_mode import fails_open
from tollway.plugins.prompt_shapes import ADDED_TURNS, shaped_body
from tollway.protocols.sse import SseEvent
from tollway.services import Services
from tollway.state import StateUnavailable

if TYPE_CHECKING:
    # numpy and the vectors are loaded only where a semantic cache is configured.
    from tollway.cache.vectors import SemanticIndex, Vector
    from tollway.plugins.ai_cache.embeddings import Embedder

log = logging.getLogger("tollway.plugins.ai_cache")

_HEADER = "x-tollway-cache"
# Answers that call tools are kept only when the key holds the tools (``request``).
_TOOL_CALLS = (b'"tool_calls"', b'"tool_use"', b'"function_call"')
_NONE_ADDED = (0, 0)
# The request headers that say whether to look up or store.
_DIRECTIVE_HEADERS = frozenset({"cache-control", "x-higress-skip-ai-cache"})


@dataclass(slots=True)
class _Pending:
    """A miss whose answer may be stored: its key, its prompt's vector, and a stream's
    events as they passed (a whole answer is read off the exchange at the end)."""

    key: CacheKey
    vector: Vector | None
    events: list[bytes] | None = field(default_factory=list)
    size: int = 0
    ended: bool = False


def _directives(ex: Exchange) -> tuple[bool, bool]:
    """(look up, store) as the client allows them."""
    headers = ex.request.headers
    if not headers.has_any(_DIRECTIVE_HEADERS):  # most calls: neither header
        return True, True
    if (headers.get("x-higress-skip-ai-cache") or "").strip().lower() == "on":
        return False, False
    value = headers.get_all("cache-control") if "cache-control" in headers else ()
    if not value:
        return True, True
    said = {d.strip().split("=", 1)[0].lower() for v in value for d in v.split(",")}
    return "no-cache" not in said, "no-store" not in said


def _unreadable() -> None:
    """A stored entry this version cannot read: said, and taken as a miss."""
    log.warning("ai-cache: a stored entry could not be read; treated as a miss", exc_info=True)


class AiCache(Plugin[AiCacheConfig]):
    name = "ai-cache"
    phase = Phase.UNSPECIFIED
    priority = 5
    config_model = AiCacheConfig

    def __init__(self, config: AiCacheConfig, scope: Scope, services: Services) -> None:
        super().__init__(config, scope, services)
        stores = services.caches or CacheStores(services.state)
        self.prefix = config.key_prefix
        self.ttl_s = config.ttl_s
        self.answers = stores.answers(self.prefix, config.max_entries, config.max_bytes)
        # This process's store, asked without a coroutine (None: Redis's, asked with one).
        self.memory = self.answers if isinstance(self.answers, MemoryAnswers) else None
        self.fail_open = fails_open(scope, default_open=True)
        self.index: SemanticIndex | None = None
        self.embedder: Embedder | None = None
        semantic = config.semantic
        if semantic is not None and config.enableSemanticCache and config.cacheKeyStrategy != "disabled":
            self._semantic(stores, scope, semantic.provider, semantic.model)
        self._pending: StateKey[_Pending] = StateKey(f"{self.name}.pending.{id(self):x}")

    def _semantic(self, stores: CacheStores, scope: Scope, provider_id: str, model: str) -> None:
        lookup = scope.providers
        provider = lookup.provider(provider_id) if lookup is not None else None
        if lookup is not None and provider is None:
            raise ValueError(f"semantic.provider: no provider with id {provider_id!r}")
        if provider is not None and provider.protocol != "openai":
            raise ValueError(
                f"semantic.provider: provider {provider_id!r} ({provider.type}) has no OpenAI-style "
                "/embeddings; name an openai, azure, mock or other OpenAI-compatible provider"
            )
        assert self.config.semantic is not None
        self.index = stores.semantic(self.prefix, self.config.semantic.max_entries, self.config.semantic.sync_s)
        if provider is not None and self.index is not None:
            from tollway.plugins.ai_cache.embeddings import Embedder

            self.embedder = Embedder(provider, model, self.services.side_call_spend)

    # --- the request: look it up --------------------------------------------------------

    def _scope_of(self, ex: Exchange, body: dict[str, Any]) -> str:
        route = ex.route.name if ex.route is not None else ""
        scope = self.config.scope
        if ex.api == "responses" and scope != "consumer" and body.get("store") is not False:
            # A stored response is its maker's (``response_owners``): its id, replayed to
            # another consumer, could not be read or continued by them.
            scope = "consumer"
        if scope == "route":
            return f"route={route}"
        consumer = ex.consumer
        if scope == "group" and consumer is not None and consumer.groups:
            # As JSON: a group's name may hold a comma (joined by commas, the one group
            # "staff,x" shared the entries of the pair "staff" and "x").
            return f"route={route};groups={orjson.dumps(sorted(consumer.groups)).decode()}"
        return f"route={route};consumer={consumer.name if consumer is not None else ''}"

    def _key(self, ex: Exchange) -> CacheKey | None:
        body = shaped_body(ex)
        if body is None or ex.model_requested is None or body.get("n") not in (None, 1):
            return None
        route, lookup = ex.route, self.scope.providers
        model = ex.model_requested
        if route is not None and lookup is not None:
            model = lookup.upstream_model(route, model)
        added = ex.get(ADDED_TURNS) or _NONE_ADDED
        strategy = self.config.cacheKeyStrategy
        return cache_key(ex.api, body, model, strategy, self._scope_of(ex, body), self.embedder is not None, added)

    async def request_body(self, ex: Exchange) -> Reply | None:
        if self.config.cacheKeyStrategy == "disabled":
            return None
        key = self._key(ex)
        if key is None:
            return None
        look, store = _directives(ex)
        vector: Vector | None = None
        if look:
            memory = self.memory
            if memory is not None:
                stored = memory.lookup(self.prefix + key.exact)
                reply = self._hit(ex, stored, "hit") if stored is not None else None
            else:
                reply = await self._exact(ex, key)
            if reply is not None:
                return reply
            if self.embedder is not None and key.question is not None:
                await self._admit_early(ex)
                vector = await self.embedder.embed(ex, key.question)
                if vector is not None:
                    reply = await self._nearest(ex, key, vector)
                    if reply is not None:
                        return reply
        ex.cache = "miss" if look else "skip"
        ex.response_headers.append((_HEADER, "miss"))
        if store:
            ex.put(self._pending, _Pending(key, vector))
        return None

    async def _admit_early(self, ex: Exchange) -> None:
        """The call's budget asked before its embeddings call is made: a consumer whose
        budget refuses the call would otherwise pay for an embedding on every try (a
        judge's finding), and the operator's provider be called for nothing. A semantic
        hit then costs nothing; the hold is given back as the call ends."""
        spend, lookup = self.services.side_call_spend, self.scope.providers
        if spend is not None and lookup is not None and ex.consumer is not None:
            await spend.admit_early(ex, lookup.upstream_calls)

    async def _exact(self, ex: Exchange, key: CacheKey) -> Reply | None:
        try:
            stored = await self.answers.get(self.prefix + key.exact)
        except UnusableAnswer:
            _unreadable()
            return None
        except StateUnavailable:
            if self.fail_open:
                return None
            raise GatewayError(
                "ai-cache: the cache store is unavailable; try again shortly",
                reason=f"{self.name}.state_unavailable",
                status=503,
                code="service_unavailable",
                headers=[("retry-after", "1")],
            ) from None
        return self._hit(ex, stored, "hit") if stored is not None else None

    def _partition(self, key: CacheKey) -> str:
        assert self.embedder is not None
        return f"{key.partition}:{self.embedder.model}"

    async def _nearest(self, ex: Exchange, key: CacheKey, vector: Vector) -> Reply | None:
        assert self.index is not None and self.config.semantic is not None
        found = await self.index.nearest(self._partition(key), vector)
        if found is None or found[1] < self.config.semantic.threshold:
            return None
        raw = await self.index.answer(found[0])
        if raw is None:
            return None
        try:
            stored = StoredAnswer.decode(raw)
        except UnusableAnswer:
            _unreadable()
            return None
        return self._hit(ex, stored, "semantic")

    def _hit(self, ex: Exchange, stored: StoredAnswer, outcome: CacheOutcome) -> Reply | None:
        try:
            if stored.api != ex.api:
                return None
            client_request = ex.request.json()
            reply = reply_of(stored, ex.stream, client_request, [(_HEADER, "hit")])
        except (UnusableAnswer, BadRequest, ValueError, KeyError, TypeError):
            log.warning("ai-cache: an entry could not be replayed; treated as a miss", exc_info=True)
            return None
        ex.cache = outcome
        ex.usage = stored.usage_of()
        ex.model_upstream = stored.model
        return reply

    # --- the answer: keep a copy, store it when the call is over ------------------------

    def stream_event(self, ex: Exchange, event: SseEvent) -> list[SseEvent]:
        pending = ex.get(self._pending)
        if pending is not None and pending.events is not None and ex.status == 200:
            pending.size += len(event.raw)
            if pending.size > self.config.max_bytes:
                pending.events = None  # too large to keep: not stored
            else:
                pending.events.append(event.raw)
        return [event]

    def stream_end(self, ex: Exchange) -> list[SseEvent]:
        pending = ex.get(self._pending)
        if pending is not None:
            pending.ended = True
        return []

    async def done(self, ex: Exchange) -> None:
        pending = ex.get(self._pending)
        if pending is None or ex.status != 200 or ex.error is not None or ex.unfinished:
            return
        body = ex.reply_body
        if body is not None and not ex.stream:
            if len(body) > self.config.max_bytes or not complete(ex.api, body):
                return  # too large, or a 200 with no finished answer in it (an error inside)
            stored = self._stored(ex, False, body)
        elif pending.events and pending.ended and ex.stream_ended:
            events = b"".join(pending.events)
            if not finished(ex.api, events):
                return  # ended without the model's finish: cut short all the same
            stored = self._stored(ex, True, events)
        else:
            return  # cut short, too large, or the client left
        if stored is None:
            return
        memory = self.memory
        if memory is not None:
            memory.store(self.prefix + pending.key.exact, stored, self.ttl_s)
        else:
            try:
                await self.answers.put(self.prefix + pending.key.exact, stored, self.ttl_s)
            except StateUnavailable:
                pass  # the store logged it; the answer is simply not cached
        if self.index is None or self.embedder is None:
            return
        vector, question = pending.vector, pending.key.question
        if vector is None and question is not None:
            # Not looked up (``no-cache``): the prompt was never embedded, and a fresh
            # answer belongs in the semantic index as much as under its exact key.
            vector = await self.embedder.embed(ex, question)
        if vector is not None:
            await self.index.add(self._partition(pending.key), vector, stored.encode(), self.ttl_s)

    def _stored(self, ex: Exchange, streamed: bool, payload: bytes) -> StoredAnswer | None:
        if self.config.cacheKeyStrategy != "request" and any(t in payload for t in _TOOL_CALLS):
            return None  # the key left the tools out: a tool call may not suit the next asker
        u = ex.usage
        usage = (
            u.input_tokens,
            u.output_tokens,
            u.cached_tokens,
            u.reasoning_tokens,
            u.cache_write_tokens,
            u.cache_write_1h_tokens,
        )
        return StoredAnswer(ex.api, streamed, payload, usage, ex.model_upstream, u.estimated)


__all__ = ["AiCache"]
