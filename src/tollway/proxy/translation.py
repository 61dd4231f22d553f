"""The adapter that joins wire formats (``protocols/``) to providers (``providers/``).

A call needs translating when the client speaks one protocol (OpenAI chat, or
Anthropic messages on ``/v1/messages``) and the provider's native chat API another
(``Provider.protocol``). Everything crosses the OpenAI-chat pivot; this module only
sequences the codec calls and reads usage off the pivot, so ai-proxy stays the same
for every pair of protocols.

The Responses API (``POST /v1/responses``) passes as it came to the provider types that
serve it (``openai``, ``azure``) and is translated for every other type, OpenAI-style
chat providers included. Its other endpoints (``/v1/responses/{id}``, its cancel, input
items, token counting) reach only those types: a translated response is stored nowhere,
so they are refused for the others (400 ``unsupported_parameter``), never sent on.

A stream goes through an ``EventTranslation`` either way: ``Passthrough`` when the
provider speaks the client's protocol (the identity, reading usage off the native
events; ``ResponsesPassthrough`` for the Responses API's events), ``StreamTranslation``
when it does not. So there is one relay loop.

Gemini's thought signatures reach an Anthropic or Responses client folded into its
tool-call ids, and come back out of them in every client's request
(``tollway.protocols.signed_ids``): done here, once for every pair of protocols.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from tollway.errors import BadRequest, UpstreamError
from tollway.exchange import Exchange
from tollway.protocols.apis import CHAT, MESSAGES, RESPONSES, dialect_of
from tollway.protocols.codec import Codec, Json, StreamReader, StreamWriter, TranslationError
from tollway.protocols.lists import members
from tollway.protocols.openai import wire as openai_wire
from tollway.protocols.registry import codec_for
from tollway.protocols.responses import ResponsesCodec
from tollway.protocols.responses.response import MINTED
from tollway.protocols.signed_ids import CARRIED_IN_IDS, FoldingWriter, fold, unfold
from tollway.protocols.sse import SseEvent, is_terminal
from tollway.protocols.usage import apply_usage
from tollway.providers.base import Provider
from tollway.proxy.tokens import take_model, take_usage

log = logging.getLogger("tollway.proxy")

# The client APIs a call to a provider of another protocol is translated for.
_TRANSLATED = frozenset({CHAT, MESSAGES, RESPONSES})
# The provider types that serve the Responses API themselves.
RESPONSES_SERVED_BY = frozenset({"openai", "azure"})
_RESPONSES_ITEMS = RESPONSES + "/"
# Calls on a response a translation made (``MINTED``), which no provider keeps.
_MINTED_PATH = _RESPONSES_ITEMS + MINTED

# Client headers that belong to one protocol and mean nothing (or harm) to another.
PROTOCOL_HEADERS = frozenset({"anthropic-version", "anthropic-beta", "openai-organization", "openai-project"})


# What a whole answer of each provider protocol has, at least one of: an answer with
# none of them is no answer of that protocol.
_ANSWER_MARKS: dict[str, tuple[str, ...]] = {
    "openai": ("choices",),
    "anthropic": ("content",),
    "gemini": ("candidates", "promptFeedback"),
}


class Translation:
    """One call's crossing from the client's format to the provider's and back."""

    __slots__ = ("_writer", "client", "client_body", "native", "provider")

    def __init__(self, client: Codec, native: Codec, client_body: Json, provider: Provider) -> None:
        self.client = client
        self.native = native
        self.client_body = client_body
        self.provider = provider
        self._writer: StreamWriter | None = None

    @classmethod
    def for_call(cls, api_path: str, provider: Provider, body: Json | None) -> Translation | None:
        """The translation a call needs, or ``None`` when the provider speaks the
        client's protocol for this API, or takes requests as clients send them
        (``protocol: original``), or the API is not a chat API."""
        if api_path == RESPONSES and body is not None and _continues_minted(body):
            raise _continued_nowhere(body)
        if body is None or api_path not in _TRANSLATED or not provider.translates:
            lowered = api_path[: len(_MINTED_PATH)].lower()  # (a provider may match paths in any case)
            if lowered.startswith(_RESPONSES_ITEMS) and (provider.translates or lowered == _MINTED_PATH):
                # (One a translation made reaches no provider: a route whose first
                # provider serves the API sent its id there, with the organisation's key.)
                _refuse_stored_responses(api_path, provider)
            return None
        if api_path == RESPONSES:
            if provider.type in RESPONSES_SERVED_BY:
                return None
            return cls(ResponsesCodec(body), codec_for(provider.protocol), body, provider)
        client_name = dialect_of(api_path)
        if provider.protocol == client_name:
            return None
        return cls(codec_for(client_name), codec_for(provider.protocol), body, provider)

    def request(self, upstream_model: str, stream: bool = False) -> bytes:
        """The provider's request body; a request the target cannot express is a 400,
        and so is one whose fields have types their API does not allow (a list where a
        string goes: the codecs read fields by their documented types). A streamed
        call's writer is made here too: whatever it refuses is refused before the
        provider is called (and bills), not after."""
        provider = self.provider
        try:
            chat = unfold(self.client.request_to_pivot(self.client_body))
            native = self.native.request_from_pivot(provider.pivot_body({**chat, "model": upstream_model}))
            if stream:
                self._writer = self._client_writer()
            return orjson.dumps(provider.native_body(native, translated=True))
        except TranslationError as exc:
            message, param = str(exc), exc.param
            spelled = self.client.pivot_fields.get(param) if param is not None else None
            if spelled is not None:  # (the field as the client's protocol names it)
                message, param = spelled + message[len(param or "") :], spelled
            refusal = BadRequest(message, reason="gateway.bad_request", code="unsupported_parameter")
            refusal.param = param
            raise refusal from None
        except (TypeError, ValueError, AttributeError, KeyError, orjson.JSONEncodeError) as exc:
            raise _mistyped(exc) from None

    def response(self, body: bytes, native: Any) -> tuple[bytes, Json | None]:
        """The client's answer body and the pivot it came through (for usage), from the
        provider's ``body`` and ``native``, that body parsed (``None`` when it is not
        JSON); a body that is not a JSON object passes as it came (the provider's own
        words)."""
        if not isinstance(native, dict):
            return body, None
        marks = _ANSWER_MARKS.get(self.native.name)
        if marks is not None and not any(mark in native for mark in marks):
            # Another protocol's answer (a baseUrl pointing at the wrong kind of server):
            # read as this one's, it became an empty 200 that reported no usage.
            raise UpstreamError(
                f"the provider's answer is not one of the {self.native.name} protocol "
                f"(it has none of {', '.join(marks)})",
                reason="ai-proxy.bad_upstream_response",
            )
        pivot = self.native.response_to_pivot(native)
        shown = fold(pivot) if self.client.name in CARRIED_IN_IDS else pivot
        return orjson.dumps(self.client.response_from_pivot(shown)), pivot

    def _client_writer(self) -> StreamWriter:
        writer = self.client.stream_from_pivot(self.client_body)
        return FoldingWriter(writer) if self.client.name in CARRIED_IN_IDS else writer

    def error(self, status: int, body: bytes) -> bytes:
        """A provider's error in the client's own error shape, status unchanged."""
        return self.client.error_from_pivot(status, self.native.error_to_pivot(status, body))

    def stream(self, ex: Exchange) -> StreamTranslation:
        """The provider's stream in the client's protocol, through the writer
        ``request`` made (a provider that streams a call asked whole gets one now)."""
        writer = self._writer
        if writer is None:
            try:
                writer = self._client_writer()
            except (TypeError, ValueError, AttributeError, KeyError) as exc:
                raise _mistyped(exc) from None
        return StreamTranslation(ex, self.native.stream_to_pivot(), writer)


def _mistyped(exc: Exception) -> BadRequest:
    log.info("a request could not be translated (%s: %s)", type(exc).__name__, exc)
    return BadRequest(
        "request body has a field of a type its API does not allow; see the API reference",
        reason="gateway.bad_request",
    )


def _continues_minted(body: Json) -> bool:
    """Whether a Responses call continues a response a translation made (``MINTED``):
    no provider holds it, and one that serves the API was sent its id with the
    organisation's key (a red team's finding)."""
    previous = body.get("previous_response_id")
    return isinstance(previous, str) and previous[: len(MINTED)].lower() == MINTED


def _continued_nowhere(body: Json) -> BadRequest:
    refusal = BadRequest(
        f"previous_response_id {str(body.get('previous_response_id'))[:80]!r}: the response was translated for "
        "a provider that keeps none (store: a translated response is kept nowhere); send its output as input instead",
        reason="gateway.bad_request",
        code="unsupported_parameter",
    )
    refusal.param = "previous_response_id"
    return refusal


def _refuse_stored_responses(api_path: str, provider: Provider) -> None:
    """The Responses API's endpoints past ``POST /v1/responses`` work on responses the
    provider stored: one that does not serve the API has none (see the module)."""
    minted = api_path[: len(_MINTED_PATH)].lower() == _MINTED_PATH
    if provider.type in RESPONSES_SERVED_BY and not minted:
        return
    counting = api_path.lower().startswith(_RESPONSES_ITEMS + "input_tokens")
    if counting:
        what = "token counting of the Responses API"
    else:
        what = "a stored response (store: a translated response is kept nowhere)"
    if minted:
        message = f"/v1{api_path}: {what}: this response was translated for a provider that keeps none"
    else:
        message = f"/v1{api_path}: {what} cannot be translated for provider {provider.id!r} of type {provider.type!r}"
    refusal = BadRequest(message, reason="gateway.bad_request", code="unsupported_parameter")
    if not counting:
        refusal.param = "store"
    raise refusal


class EventTranslation(Protocol):
    """A provider's stream events → the client's, one stream's worth; usage is read off
    them on the way. ``sent_chars`` counts the generated text handed on so far (what an
    estimate bills when the stream never reports usage).

    ``finished`` says the provider's stream reached its end as its protocol marks it
    (``[DONE]``, ``message_stop``, ``response.completed``, or a finish reason: some
    OpenAI-compatible servers send no ``[DONE]``): a body that stops short of it was cut
    off. ``failure`` is the message of the provider's own error event, once one came;
    nothing after it is handed on."""

    sent_chars: int
    failure: str | None

    @property
    def finished(self) -> bool: ...

    def feed(self, events: list[SseEvent]) -> list[SseEvent]:
        """The client's events for the provider's next ``events`` (may be the same list)."""
        ...

    def end(self) -> list[SseEvent]:
        """The provider's stream is over: what is still owed to the client."""
        ...

    def broke(self) -> None:
        """The provider's stream failed midway: take what it reported so far."""
        ...

    def closing(self, message: str, code: str) -> list[SseEvent]:
        """The events the client's protocol ends a failed stream with, for a failure the
        provider's stream could not say itself (its connection broke; its body ended
        short): a translation's own writer says it in order, numbered as the rest; none
        when the client's events pass as they came (the gateway then adds its own)."""
        ...


# The APIs (``Exchange.api``) whose streams mark their end (OpenAI chat and completions,
# Anthropic messages): a pass-through stream of any other API is taken as it ends.
_MARKED_ENDS = frozenset({"chat", "completions", "messages"})


def _finishes(obj: dict[str, Any] | None) -> bool:
    """An OpenAI chunk with a finish reason, Anthropic's ``message_delta`` with a stop
    reason, or a Gemini chunk whose candidate has its ``finishReason``."""
    if obj is None:
        return False
    for choice in members(obj, "choices") or members(obj, "candidates"):
        if isinstance(choice, dict) and (choice.get("finish_reason") or choice.get("finishReason")):
            return True
    delta = obj.get("delta")
    return obj.get("type") == "message_delta" and isinstance(delta, dict) and bool(delta.get("stop_reason"))


def finish_given(pivot: Any) -> bool:
    """Whether a translated whole answer's pivot (a chat completion) gives every choice
    its finish reason."""
    choices = pivot.get("choices") if isinstance(pivot, dict) else None
    return (
        isinstance(choices, list)
        and bool(choices)
        and all(isinstance(c, dict) and c.get("finish_reason") for c in choices)
    )


def _error_message(obj: dict[str, Any]) -> str | None:
    """The message of a provider's error event: OpenAI's ``{"error": …}`` chunk,
    Anthropic's ``error`` event; None for any other event."""
    if "choices" in obj or ("error" not in obj and obj.get("type") != "error"):
        return None
    err = obj.get("error")
    message = err.get("message") if isinstance(err, dict) else obj.get("message")
    return message if isinstance(message, str) and message else "the provider reported an error"


class Passthrough:
    """The identity translation: events go on as they came. OpenAI's usage chunk and
    Anthropic's ``message_start``/``message_delta`` are read as they pass; with
    ``hide_usage`` (the gateway asked for the usage chunk, the client did not) the
    usage-only chunk is kept from the client.

    Per event it does no more than the usage needs (a stream's every event passes here):
    whether the stream finished is read off its terminal event as it passes, or, at the
    end, off the last two chunks it parsed (a finish reason, then maybe the usage chunk)."""

    __slots__ = ("_before", "_counts", "_ended", "_ex", "_hide_usage", "_last", "failure", "sent_chars")

    def __init__(self, ex: Exchange, hide_usage: bool, counts_usage: bool = True) -> None:
        self._ex = ex
        self._hide_usage = hide_usage
        # A read's stream (``GET /responses/{id}?stream=true``) tells the usage of the
        # run that made the object, which is not this call's (stored_reads).
        self._counts = counts_usage
        self.sent_chars = 0
        # (Gemini's own stream, a model named in the path, ends with a finish reason too.)
        self._ended = ex.api not in _MARKED_ENDS and not (ex.model_in_path and ex.stream)
        self._last: dict[str, Any] | None = None
        self._before: dict[str, Any] | None = None
        self.failure: str | None = None

    @property
    def finished(self) -> bool:
        return self._ended or _finishes(self._last) or _finishes(self._before)

    def feed(self, events: list[SseEvent]) -> list[SseEvent]:
        if self.failure is not None:
            return []
        hidden: list[SseEvent] | None = None
        for event in events:
            raw = event.raw
            # Pings, [DONE] and Anthropic's content blocks carry no usage: no parse.
            # (Gemini's own stream says ``"usageMetadata"``.)
            if b'"usage' in raw or b'"choices"' in raw or b'"delta"' in raw or b'"candidates"' in raw:
                obj = event.json()
                if isinstance(obj, dict):
                    if "error" in obj and self._failed(obj):
                        return events[: events.index(event) + 1]  # nothing after the provider's error
                    if self._counts:
                        take_usage(self._ex, obj)
                    if self._ex.model_reported is None:
                        # (From the first chunk: a stream the client leaves never gets
                        # to the usage chunk, which says it too.)
                        take_model(self._ex, obj)
                    self.sent_chars += openai_wire.content_chars(obj)
                    self._before, self._last = self._last, obj
                    if self._hide_usage and openai_wire.is_usage_only_chunk(obj):
                        hidden = [event] if hidden is None else [*hidden, event]
            elif not self._ended:
                if is_terminal(raw):
                    self._ended = True
                elif b'"error"' in raw and self._failed(event.json()):
                    return events[: events.index(event) + 1]
        if hidden is None:
            return events
        return [e for e in events if e not in hidden]

    def _failed(self, obj: Any) -> bool:
        failure = _error_message(obj) if isinstance(obj, dict) else None
        if failure is None:
            return False
        self.failure = failure
        return True

    def end(self) -> list[SseEvent]:
        return []

    def broke(self) -> None:
        return

    def closing(self, message: str, code: str) -> list[SseEvent]:
        return []


# Responses events whose ``delta`` is generated text (for an estimate of a cut stream).
_RESPONSES_DELTAS = frozenset(
    {"response.output_text.delta", "response.refusal.delta", "response.function_call_arguments.delta"}
)


# The events that end a Responses stream that ran its course.
_RESPONSES_ENDS = frozenset({"response.completed", "response.incomplete"})


def _responses_failure(obj: dict[str, Any]) -> str | None:
    """The message of a Responses stream's ``error`` or ``response.failed`` event."""
    kind = obj.get("type")
    if kind == "error":
        message = obj.get("message")
    elif kind == "response.failed":
        response = obj.get("response")
        err = response.get("error") if isinstance(response, dict) else None
        message = err.get("message") if isinstance(err, dict) else None
    else:
        return None
    return message if isinstance(message, str) and message else "the provider reported an error"


class ResponsesPassthrough:
    """A Responses API stream as it came: the usage and model read off the response in
    ``response.completed`` (or ``incomplete``, ``failed``), the text off the deltas."""

    __slots__ = ("_counted", "_created", "_ex", "failure", "finished", "sent_chars")

    def __init__(
        self,
        ex: Exchange,
        counted: Callable[[dict[str, Any]], None] | None = None,
        created: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._ex = ex
        self.sent_chars = 0
        self.finished = False
        self.failure: str | None = None
        # Told the response the stream ended with, whose usage it counted (stored_reads:
        # a later read of a background run then counts none).
        self._counted = counted
        # Told the response its first event made (response_owners: it is the consumer's
        # from then on, though the client leave before it ends).
        self._created = created

    def feed(self, events: list[SseEvent]) -> list[SseEvent]:
        if self.failure is not None:
            return []
        for i, event in enumerate(events):
            raw = event.raw
            # (An error or response.failed event names itself in its first bytes.)
            head = raw[:48]
            if (
                b'"delta"' not in raw
                and b'"usage"' not in raw
                and b"error" not in head
                and b"fail" not in head
                and b"created" not in head
            ):
                continue
            obj = event.json()
            if not isinstance(obj, dict):
                continue
            delta, kind = obj.get("delta"), obj.get("type")
            if type(kind) is not str:  # (a provider's ``type`` may be any JSON value)
                kind = ""
            if isinstance(delta, str) and kind in _RESPONSES_DELTAS:
                self.sent_chars += len(delta)
                continue
            take_usage(self._ex, obj)
            if kind in _RESPONSES_ENDS:
                self.finished = True
                run = obj.get("response")
                if self._counted is not None and isinstance(run, dict):
                    self._counted(run)
            elif kind == "response.created":
                run = obj.get("response")
                if self._created is not None and isinstance(run, dict):
                    self._created(run)
            elif (failure := _responses_failure(obj)) is not None:
                self.failure = failure
                return events[: i + 1]
        return events

    def end(self) -> list[SseEvent]:
        return []

    def broke(self) -> None:
        return

    def closing(self, message: str, code: str) -> list[SseEvent]:
        return []


class StreamTranslation:
    """Native events → pivot chunks (usage read here) → the client's events. The pivot
    says how the provider's stream went: a finish reason (or the native terminal event)
    ends it, an error chunk fails it."""

    __slots__ = ("_ex", "_finish_given", "_reader", "_writer", "failure", "finished", "sent_chars")

    def __init__(self, ex: Exchange, reader: StreamReader, writer: StreamWriter) -> None:
        self._ex = ex
        self._reader = reader
        self._writer = writer
        self.sent_chars = 0
        self.finished = False
        self._finish_given = False  # (``finished`` holds for a bare ``[DONE]`` too)
        self.failure: str | None = None

    def _take(self, chunk: dict[str, Any]) -> None:
        usage = chunk.get("usage")
        chars = openai_wire.content_chars(chunk)
        if usage is not None and apply_usage(self._ex.usage, usage):
            take_model(self._ex, chunk)
            # Counts reported before any of the answer (Anthropic's message_start: 1
            # output token so far) are a placeholder, not a report of what was made;
            # Gemini's running counts, beside the text they count, are one.
            self._ex.usage.provisional = (
                not (self.finished or _finishes(chunk)) and self.sent_chars + chars == 0
            ) or getattr(self._reader, "usage_is_placeholder", False)  # (Anthropic's reader says it)
        self.sent_chars += chars
        if "error" in chunk:
            self.failure = _error_message(chunk)
        elif not self._finish_given and _finishes(chunk):
            self.finished = self._finish_given = True

    def _write(self, chunks: list[Json]) -> list[SseEvent]:
        out: list[SseEvent] = []
        for chunk in chunks:
            self._take(chunk)
            out.extend(self._writer.feed(chunk))
            if self.failure is not None:
                break  # the writer said it in the client's protocol; nothing after it
        return out

    def feed(self, events: list[SseEvent]) -> list[SseEvent]:
        out: list[SseEvent] = []
        for event in events:
            if self.failure is not None:
                break
            if not self.finished and is_terminal(event.raw):
                self.finished = True
            out.extend(self._write(self._reader.feed(event)))
        return out

    def end(self) -> list[SseEvent]:
        out = self._write(self._reader.end())
        out.extend(self._writer.end())
        if not self._finish_given:
            self._ex.unfinished = True  # (the writer ended it as finished all the same)
        return out

    def broke(self) -> None:
        """What the reader still owes (the usage the provider reported so far, for
        formats that send it before their last event) is read; the client's writer gets
        nothing more."""
        for chunk in self._reader.end():
            self._take(chunk)

    def closing(self, message: str, code: str) -> list[SseEvent]:
        failed: Json = {"error": {"message": message, "type": "server_error", "code": code}}
        return [*self._writer.feed(failed), *self._writer.end()]
