"""ai-proxy: what a route's provider does, as the terminal step after the plugin chain.

``serve`` takes an exchange whose request phase is over and returns the provider's
answer as a ``Reply``, in the client's protocol: a whole body, or ``events`` to relay.
The gateway runs the response hooks and writes to the client; nothing here does.

OpenAI-style requests go to the provider's API root plus the client's path after
``/v1``, with the provider's credential in place of the client's; other protocols are
translated both ways (``translation``). Every provider call is one ``Attempt`` on the
exchange. ``retryOnFailure`` tries the same provider again with its next token (until
``retryTimeout`` has passed since its first attempt); then the next provider that
serves the model (``provider_choice``) is tried on connect errors, 429 and 5xx. A
request the gateway refuses to send (400 ``unsupported_parameter``) is the client's
error, answered at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from tollway import content_coding
from tollway.errors import BadRequest, GatewayError, NotFound, UpstreamError, UpstreamTimeout
from tollway.exchange import Attempt, Exchange, Reply
from tollway.protocols import provider_json
from tollway.protocols.apis import JSON_APIS, MODELS, keeps_state, makes_batch
from tollway.protocols.gemini import errors as gemini_errors
from tollway.protocols.gemini.array_stream import ArrayReader
from tollway.providers.base import Provider
from tollway.providers.errors import translate
from tollway.proxy import upstream_request
from tollway.proxy.count_tokens import estimated_answer
from tollway.proxy.events import ProviderEvents
from tollway.proxy.models import ModelListing
from tollway.proxy.ownership import OWNED_APIS, Ownership, may_name, names_kept, owned_here
from tollway.proxy.provider_choice import RouteProviders
from tollway.proxy.response_owners import ResponseOwners, held_here
from tollway.proxy.stored_reads import StoredReads, told_later
from tollway.proxy.tokens import answer_chars, estimate_unfinished, estimated, take_usage
from tollway.proxy.translation import EventTranslation, Passthrough, ResponsesPassthrough, Translation, finish_given
from tollway.state import StateStore
from tollway.upstream import (
    MAX_ANSWER_BYTES,
    TransportError,
    TransportTimeout,
    UpstreamRequest,
    UpstreamResponse,
    answer_decoding,
    decode_answer,
)

# The status of an attempt cancelled before the provider answered (nginx's "client
# closed request": the usual cause).
CANCELLED = 499

_MODEL_DETAILS = "/models/"
# A model list or a model's details: HEAD is answered as GET is, with its headers
# (content-length included; the edge sends no body), so it asks the provider with GET
# too (a provider's HEAD answer has no body to list or reshape).
_MODEL_READS = frozenset({"GET", "HEAD"})


def _fails_over(status: int) -> bool:
    return status == 429 or status >= 500


def _clients_fault(err: GatewayError) -> bool:
    return err.status < 500 and err.status != 429


# An error body past this is redacted off the event loop (``ProviderSecrets.body``): a
# provider's megabytes of error held every other call up (a red team's finding).
_REDACT_IN_LOOP_BYTES = 256 << 10


class AiProxy:
    """``ownership``: files and batches held to the consumer that made them (none: the
    provider's account is shared as it is, as in a runtime without a database).
    ``state``: where a read of a finished run claims its usage (``stored_reads``).
    ``max_answer_bytes``: ``server.max_upstream_body_bytes``, which bounds a compressed
    answer once decoded too."""

    def __init__(
        self,
        idle_timeout_s: float,
        drain_s: float = 0.0,
        ownership: Ownership | None = None,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        state: StateStore | None = None,
    ) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.max_answer_bytes = max_answer_bytes
        self.drain_s = drain_s
        self.models = ModelListing(idle_timeout_s)
        self.ownership = ownership
        # Stored responses, held to the consumer that made them where files are.
        self.response_owners = ResponseOwners(ownership.holdings) if ownership is not None else None
        self.reads = StoredReads(state)

    async def serve(self, ex: Exchange, route_providers: RouteProviders) -> Reply:
        """The answer of the first provider that gives one worth sending (see the module)."""
        if ex.request.method in _MODEL_READS and ex.api == "models":
            if ex.api_path == MODELS:
                return await self.models.answer(ex, route_providers)
            if ex.api_path.startswith(_MODEL_DETAILS):
                # GET /v1/models/{id}: asked of the provider that serves that model.
                self.models.take_details_model(ex, ex.api_path[len(_MODEL_DETAILS) :])
                return await self._model_details(ex, route_providers)
        model = ex.model_requested
        candidates = self._candidates(ex, route_providers)
        client_body = self._client_body(ex)
        if ex.api == "count_tokens" and candidates[0].protocol != "anthropic" and client_body is not None:
            # Only Anthropic's API counts tokens: for the others the gateway estimates.
            # No provider is called (the record's provider stays null, and no token limit
            # is charged); the model is the one it would have gone upstream as, priced
            # at nothing.
            ex.model_upstream = candidates[0].map_model(model or "")
            return estimated_answer(ex, client_body)
        if ex.consumer is not None and _stored_completions(ex):
            # OpenAI keeps a chat completion made with ``store: true`` and serves it, its
            # messages and the list of them all to anyone with the organisation's key;
            # the gateway does not record whose each is, so it serves none of them to a
            # consumer (another's read back whole, or listed, otherwise).
            raise NotFound(
                "stored chat completions are not served through the gateway to a consumer: they "
                "are not kept apart per consumer",
                reason="ai-proxy.not_owner",
                code="not_found",
            )
        if self.response_owners is not None and (
            ex.api == "responses" or (ex.api == "other" and held_here(ex.api_path))
        ):
            # (A call on one response, ``/responses/{id}…``, or on conversations is of no
            # API the gateway meters, "other". A chat call pays two comparisons.)
            await self.response_owners.admit(ex)
        if self.ownership is not None:
            google = any(c.google for c in candidates)  # (Google's files mean something to it)
            if may_name(ex, google):
                await self.ownership.admit_named(ex, google)  # (a body naming a file, a vector store, …)
        try:
            if self.ownership is not None and (ex.api in OWNED_APIS or (ex.api == "other" and owned_here(ex.api_path))):
                return await self.ownership.serve(
                    ex, lambda query: self._first_answer(ex, candidates, client_body, query)
                )
            if self.ownership is not None and ex.api == "models" and makes_batch(ex.api_path):
                # Gemini's batches are made by a method of a model (``:batchGenerateContent``).
                return await self.ownership.make_batch(ex, lambda: self._first_answer(ex, candidates, client_body))
            return await self._first_answer(ex, candidates, client_body)
        except asyncio.CancelledError:
            # The client left before an answer with usage: bill an estimate.
            estimate_unfinished(ex, 0)
            raise

    @staticmethod
    def _candidates(ex: Exchange, route_providers: RouteProviders) -> Sequence[Provider]:
        candidates = route_providers.for_model(ex.model_requested)
        if not candidates:
            raise NotFound(
                f"no provider serves model {ex.model_requested!r}", reason="ai-proxy.no_model", code="model_not_found"
            )
        return candidates

    async def _model_details(self, ex: Exchange, route_providers: RouteProviders) -> Reply:
        """The details of one model, from the provider that serves it, in the shape the
        client's model list gave it (``ModelListing.details_in_client_shape``)."""
        candidates = self._candidates(ex, route_providers)
        reply = await self._first_answer(ex, candidates, None)
        answered = next((p for p in candidates if p.id == ex.provider), None)
        return reply if answered is None else self.models.details_in_client_shape(ex, answered, reply)

    @staticmethod
    def _client_body(ex: Exchange) -> dict[str, Any] | None:
        """The JSON body of a model API call as plugins left it (masking may have
        rewritten it); ``None`` for every other call, whose bytes pass as they came."""
        if ex.request.method != "POST" or ex.api not in JSON_APIS:
            return None
        parsed = ex.body_json()
        if not isinstance(parsed, dict):  # the gateway refused it already
            raise BadRequest("request body must be a JSON object", reason="gateway.bad_request")
        return parsed

    async def _first_answer(
        self,
        ex: Exchange,
        candidates: Sequence[Provider],
        client_body: dict[str, Any] | None,
        query: str | None = None,
    ) -> Reply:
        """``query``: the upstream query string instead of the client's (a list's next
        page, asked on the client's behalf)."""
        last_error: GatewayError | None = None
        for i, provider in enumerate(candidates):
            is_last = i == len(candidates) - 1
            first = time.monotonic()
            for attempt in range(provider.retries + 1):
                try:
                    resp, translation = await self._call(ex, provider, client_body, query)
                except UpstreamTimeout:
                    raise  # a provider that went silent is not retried: the client has waited enough
                except GatewayError as err:
                    if _clients_fault(err):
                        # A request the gateway would not send (a field the provider's
                        # protocol cannot carry): no other provider makes it sendable.
                        raise
                    last_error = err
                    if provider.may_retry(attempt, first):
                        continue
                    if is_last:
                        raise
                    break
                if provider.retries_on(resp.status) and provider.may_retry(attempt, first):
                    # retryOnFailure: the same provider again, with its next token.
                    await resp.aclose()
                    continue
                if _fails_over(resp.status) and not is_last:
                    await resp.aclose()
                    break
                return await self._reply(ex, provider, resp, translation)
        assert last_error is not None
        raise last_error

    async def _call(
        self, ex: Exchange, provider: Provider, client_body: dict[str, Any] | None, query: str | None
    ) -> tuple[UpstreamResponse, Translation | None]:
        # (One key or none: nothing to choose, and no body to scan for what names a kept object.)
        token = provider.pick_token(_affinity(ex, client_body, provider.google) if provider.several_keys else None)
        secret = token[1] if token else None
        translation = Translation.for_call(ex.api_path, provider, client_body)
        if translation is None:
            body = upstream_request.body(ex, provider, client_body)
            endpoint = provider.endpoint(
                upstream_request.path(ex),
                ex.upstream_query() if query is None else query,
                secret,
                model=ex.model_upstream,
            )
        else:
            ex.model_upstream = provider.map_model(ex.model_requested or "")
            body = translation.request(ex.model_upstream, ex.stream)
            endpoint = provider.chat_endpoint(ex.model_upstream, ex.stream, secret)
        headers = upstream_request.headers(ex, provider, endpoint.headers, translation is not None)
        trace = ex.trace
        span_id = upstream_request.trace_context(trace, provider, headers) if trace is not None else 0
        upstream = UpstreamRequest(
            method=_upstream_method(ex),
            url=endpoint.url,
            headers=headers,
            body=body,
            headers_timeout=provider.headers_timeout(ex.stream),
            idle_timeout=self.idle_timeout_s,
        )
        # Only now: a request refused while it was being made for this provider (a field
        # its protocol cannot carry) never reached it, and its record names no provider.
        ex.provider = provider.id
        t0 = time.perf_counter()
        try:
            resp = await provider.transport.send(upstream)
        except TransportError as exc:
            status = 504 if isinstance(exc, TransportTimeout) else 502
            err = translate(exc, provider.id)
            ex.attempts.append(Attempt(provider.id, status, (time.perf_counter() - t0) * 1000, t0, span_id, err.reason))
            raise err from None
        except asyncio.CancelledError:
            # The client left (or the gateway stopped) while the provider worked on it:
            # the provider got the call, and may bill it, so the record says so.
            latency_ms = (time.perf_counter() - t0) * 1000
            ex.attempts.append(Attempt(provider.id, CANCELLED, latency_ms, t0, span_id, "gateway.cancelled"))
            raise
        ex.attempts.append(Attempt(provider.id, resp.status, (time.perf_counter() - t0) * 1000, t0, span_id))
        if token is not None and resp.status in (401, 429):
            provider.rest_token(token[0])
        return resp, translation

    async def _reply(
        self, ex: Exchange, provider: Provider, resp: UpstreamResponse, translation: Translation | None
    ) -> Reply:
        """The provider's answer in the client's protocol, its usage taken. A stream is
        handed on unread (the gateway closes it); a body is read whole here. A success
        whose body claims JSON and is not, or is not JSON where it must be translated, is
        the provider's failure: 502 ``ai-proxy.bad_upstream_response``, the call billed on
        an estimate. What the answer shows of the provider's keys is taken out
        (``ProviderSecrets``: headers always, bodies of errors), and its cookies, which
        are the organisation's session with the provider, are not passed on."""
        secrets = provider.secrets
        headers = secrets.headers([h for h in resp.headers if h[0] != "set-cookie"])
        ctype = ""
        coding: str | None = None
        for k, v in headers:  # (one pass: no cost to an answer without a coding)
            if k == "content-type":
                ctype = ctype or v
            elif k == "content-encoding":
                coding = v if coding is None else f"{coding}, {v}"
        # Gemini's stream without ``alt=sse``: one JSON array, relayed element by element.
        array = ex.stream and ex.model_in_path and translation is None and ctype.startswith("application/json")
        if resp.status == 200 and (array or ctype.startswith("text/event-stream")):
            decoding = None
            if coding is not None:
                # Asked for identity, compressed anyway: decoded as it comes, so its
                # events can be read, counted and cut into, and sent on plain.
                decoding = await self._stream_decoding(ex, provider, resp, coding)
                headers = [h for h in headers if h[0] != "content-encoding"]
            events: EventTranslation
            if translation is not None:
                events = translation.stream(ex)
            elif ex.api == "responses":
                owners = self.response_owners
                created = (lambda run: owners.streamed(ex, run)) if owners is not None else None
                events = ResponsesPassthrough(ex, self._stream_ended(ex), created)
            else:
                reads = ex.request.method == "GET"
                events = Passthrough(ex, ex.get(upstream_request.HIDE_USAGE) is True, counts_usage=not reads)
            reader = ArrayReader() if array else None
            source = ProviderEvents(ex, resp, events, provider, self.drain_s, decoding, reader)
            return Reply(resp.status, headers, events=source, json_array=array)
        try:
            body = await resp.read()
        except TransportError as exc:
            if resp.status < 300 and estimated(ex):
                estimate_unfinished(ex, 0)  # a success cut short: billed by the provider all the same
            raise translate(exc, provider.id) from None
        finally:
            await resp.aclose()
        answer: Any = None
        # application/json, with or without parameters; not JSON Lines (a batch file's
        # content: application/jsonl), which is no one JSON document.
        claims_json = ctype.startswith("application/json") and ctype[16:17] in ("", ";", " ")
        head_only = ex.request.method == "HEAD"  # (its answer has no body: it says what a GET's would be)
        reads_body = claims_json or translation is not None
        if coding is not None and body and (reads_body or resp.status >= 400):
            # A body the gateway reads (JSON, one to translate, an error to take keys
            # out of), compressed though identity was asked: decoded, and sent on as
            # what it now is. One it only passes on (a file's content) keeps its coding.
            body = self._decoded(ex, provider, resp.status, body, coding)
            headers = [h for h in headers if h[0] != "content-encoding"]
        if resp.status >= 400:
            if len(body) < _REDACT_IN_LOOP_BYTES:
                body = secrets.body(body)
            else:
                # (Linear, but some 0.2 s a megabyte: on a thread of its own, the loop
                # serves the other calls between its slices of the GIL.)
                body = await asyncio.to_thread(secrets.body, body)
            if provider.protocol == "gemini" and resp.status in (429, 503):
                headers = _with_retry_after(headers, body)
        success = resp.status < 300 and resp.status != 204 and not head_only
        if success and not reads_body and estimated(ex) and ex.request.method == "POST":
            # A model's answer that says it is no JSON (an HTML page from a proxy in front
            # of the provider) passes as it came, with no usage to read: billed on an
            # estimate, its text as the output (an embedding generates none).
            estimate_unfinished(ex, 0 if ex.api == "embeddings" else len(body))
        elif success and reads_body:
            try:
                answer = provider_json.loads(body)
            except orjson.JSONDecodeError:
                # Not JSON where it says so, or where it must be translated (an HTML page
                # from a proxy in front of the provider): there is no answer to relay.
                estimate_unfinished(ex, len(body))
                said = "the JSON it claims" if claims_json else f"JSON (content-type {ctype[:60]!r})"
                raise UpstreamError(
                    f"provider {provider.id!r} answered {resp.status} with a body that is not {said}",
                    reason="ai-proxy.bad_upstream_response",
                ) from None
        if translation is not None:
            try:
                body, answer = self._translated_body(translation, resp.status, body, answer)
                ex.unfinished = resp.status < 300 and not finish_given(answer)
            except UpstreamError:
                estimate_unfinished(ex, len(body))  # (a call the provider answered, and may bill)
                raise
            headers = [(k, v) for k, v in headers if k != "content-type"] + [("content-type", "application/json")]
        # A read's answer tells the usage of the run that made the object (stored_reads).
        if isinstance(answer, dict) and (ex.request.method != "GET" or await self.reads.first_read(ex, answer)):
            take_usage(ex, answer)
            if not ex.usage.reported and resp.status < 300 and estimated(ex) and not told_later(answer):
                estimate_unfinished(ex, answer_chars(answer))  # a success that reports no usage
        if (
            (ex.api == "responses" or ex.api == "other")
            and self.response_owners is not None
            and translation is None
            and resp.status < 300
        ):
            await self.response_owners.made(ex, answer)  # a stored response, a conversation
        return Reply(resp.status, headers, body)

    def _stream_ended(self, ex: Exchange) -> Callable[[dict[str, Any]], None]:
        """What a Responses stream tells of the response it ended with: its usage was
        counted (``stored_reads``), and it is the call's consumer's (``response_owners``)."""
        owners = self.response_owners

        def ended(run: dict[str, Any]) -> None:
            self.reads.counted(run)
            if owners is not None:
                owners.streamed(ex, run)

        return ended

    async def _stream_decoding(
        self, ex: Exchange, provider: Provider, resp: UpstreamResponse, coding: str
    ) -> content_coding.Decoding | None:
        """What undoes a stream's Content-Encoding (``answer_decoding``: bounded as a
        whole answer is, over what has come so far); a coding not decoded here is the
        provider's failure (502), before any of the stream reaches the client."""
        try:
            codings = content_coding.codings([coding])
        except content_coding.UnknownCoding:
            await resp.aclose()
            if estimated(ex):
                estimate_unfinished(ex, 0)  # generated, and billed by the provider
            raise UpstreamError(
                f"provider {provider.id!r} sent a stream with Content-Encoding {coding[:40]!r}",
                reason="ai-proxy.bad_upstream_response",
            ) from None
        return answer_decoding(codings, self.max_answer_bytes) if codings else None

    def _decoded(self, ex: Exchange, provider: Provider, status: int, body: bytes, coding: str) -> bytes:
        """``body`` with its Content-Encoding undone, within its bound (``decode_answer``:
        ``server.max_upstream_body_bytes``, and a ratio to what was sent, which a
        decompression bomb goes past); what cannot be decoded is the provider's failure
        (502), a success of it billed on an estimate."""
        try:
            return decode_answer(body, [coding], self.max_answer_bytes)
        except content_coding.CodingError as exc:
            if status < 300 and estimated(ex):
                estimate_unfinished(ex, 0)
            raise UpstreamError(
                f"provider {provider.id!r} answered {status} with a body that cannot be decoded: {exc}",
                reason="ai-proxy.bad_upstream_response",
            ) from None

    @staticmethod
    def _translated_body(translation: Translation, status: int, body: bytes, answer: Any) -> tuple[bytes, Any]:
        """The client's body, and the pivot its usage is read off (None for an error)."""
        if status >= 400:
            return translation.error(status, body), None
        return translation.response(body, answer)


def _affinity(ex: Exchange, client_body: dict[str, Any] | None, google: bool) -> str | None:
    """What picks a call's key when it makes or uses what its provider keeps per account
    (``keeps_state``; stored chat completions, listed, read or made with ``store: true``;
    a body naming a file, a vector store, a container or a Gemini cached content): the
    consumer's name (``""`` without one), so that all its calls on them go with one key.
    None for every other call, whose key goes in turn (a Responses call that stores
    nothing and continues nothing stored too)."""
    if ex.api == "responses" and client_body is not None:
        kept = client_body.get("store") is not False or any(name in client_body for name in _CONTINUES)
    elif ex.api == "chat" and ex.request.method == "POST":
        kept = client_body is not None and client_body.get("store") is True
    else:
        kept = keeps_state(ex.api, ex.api_path) or _stored_completions(ex)
    if kept or names_kept(ex, google):
        consumer = ex.consumer
        return consumer.name if consumer is not None else ""
    return None


# What makes a Responses call one on a stored response or conversation, store or not.
_CONTINUES = ("previous_response_id", "conversation")


def _stored_completions(ex: Exchange) -> bool:
    """A call on stored chat completions: their list (``GET /chat/completions``), one
    of them or its messages (``/chat/completions/{id}[/messages]``, any method), in any
    letter case (a provider may match paths so)."""
    if ex.api == "chat":
        return ex.request.method != "POST"
    return ex.api == "other" and ex.api_path[:18].lower() == "/chat/completions/"


def _with_retry_after(headers: list[tuple[str, str]], body: bytes) -> list[tuple[str, str]]:
    """A Gemini error's retry delay (in its body's ``RetryInfo`` alone) as the
    ``Retry-After`` the client's SDK backs off by, unless the answer has one."""
    if any(k == "retry-after" for k, _ in headers):
        return headers
    seconds = gemini_errors.retry_after(body)
    return headers if seconds is None else [*headers, ("retry-after", seconds)]


def _upstream_method(ex: Exchange) -> str:
    method = ex.request.method
    return "GET" if method == "HEAD" and ex.api == "models" else method
