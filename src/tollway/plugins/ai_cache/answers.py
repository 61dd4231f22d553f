"""A stored answer, and the answer a hit gets from it.

An entry keeps the answer as its client got it: the whole JSON body, or a stream's
events, with the call's usage and upstream model (what a hit saves is priced on them).

A hit in the shape stored gets it as stored: the same bytes, the same events (an OpenAI
chat stream's usage chunk only when the client asks for one, as the provider sends it:
the stored call's own, or, stored without one, one made from its usage). A hit in the other shape
crosses the chat pivot through the client API's codec: a whole answer becomes a stream
of its text, tool calls, finish and usage; a stream becomes the whole answer its events
add up to (a Responses stream's ``response.completed`` already holds it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from tollway.cache.entry import StoredAnswer, UnusableAnswer
from tollway.exchange import Reply
from tollway.plugins.ai_cache.shapes import chunks_of, completion_of, responses_events, responses_to_pivot
from tollway.protocols.codec import Codec, Json, StreamWriter
from tollway.protocols.openai.wire import is_usage_only_chunk
from tollway.protocols.pivot import usage as usage_object
from tollway.protocols.registry import codec_for
from tollway.protocols.responses import ResponsesCodec
from tollway.protocols.sse import SseEvent, SseParser

_RESPONSES = ResponsesCodec()
# The APIs whose answers are cached, by the codec that reads and writes them.
CACHED_APIS: Mapping[str, Codec] = {"chat": codec_for("openai"), "messages": codec_for("anthropic")}


def codec_of(api: str) -> Codec | ResponsesCodec:
    return _RESPONSES if api == "responses" else CACHED_APIS[api]


# How a stream says the model finished: a chat chunk's finish reason, a message's stop
# reason (a Responses stream is whole once ``response.completed`` came: ``stream_ended``).
_FINISHED = {
    "chat": re.compile(rb'"finish_reason"\s*:\s*"'),
    "messages": re.compile(rb'"stop_reason"\s*:\s*"'),
}


def finished(api: str, events: bytes) -> bool:
    """Whether a stream that reached its last event says the model finished: a provider
    that ends with ``[DONE]`` but never gave a finish reason cut the answer short."""
    said = _FINISHED.get(api)
    return said is None or said.search(events) is not None


def complete(api: str, body: bytes) -> bool:
    """Whether a whole 200 answer is a model's finished answer: a provider (or a proxy in
    front of it) that says 200 with an error object, or with an answer still in progress,
    gave nothing another client should get. A chat answer or a message says so as its
    stream does; a response by its own ``status`` (its output items have one too, so the
    object is read, not searched)."""
    if api == "responses":
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            return False
        return isinstance(answer, dict) and answer.get("status") == "completed"
    said = _FINISHED.get(api)
    return said is None or said.search(body) is not None


def _usage_only(event: SseEvent) -> bool:
    return b'"usage"' in event.raw and is_usage_only_chunk(event.json())


def _events(payload: bytes) -> list[SseEvent]:
    parser = SseParser(max_event_bytes=max(len(payload), 1))
    return [*parser.feed(payload), *parser.flush()]


def _usage_chunk(events: list[SseEvent], stored: StoredAnswer) -> SseEvent | None:
    """The usage chunk an OpenAI chat stream would end with, from the stored usage (for an
    entry stored without one)."""
    for event in events:
        first = event.json()
        if isinstance(first, dict) and "choices" in first:
            chunk: Json = {
                "id": first.get("id"),
                "object": "chat.completion.chunk",
                "created": first.get("created"),
                "model": first.get("model"),
            }
            for name in ("service_tier", "system_fingerprint"):
                if name in first:
                    chunk[name] = first[name]
            chunk["choices"] = []
            usage = chunk["usage"] = usage_object(*stored.usage)
            # As OpenAI always gives them: a client reading usage.prompt_tokens_details
            # .cached_tokens found None on a hit where the call itself had said 0.
            usage.setdefault("prompt_tokens_details", {"cached_tokens": 0})
            usage.setdefault("completion_tokens_details", {"reasoning_tokens": 0})
            return SseEvent.of_json(chunk)
    return None


def _chat_usage(events: list[SseEvent], stored: StoredAnswer, wanted: bool) -> list[SseEvent]:
    """A stored chat stream's events with a usage chunk just when the client asks for one:
    the stored call's own (as it was, every field), or one made from the stored usage."""
    kept = [e for e in events if not _usage_only(e)]
    if not wanted:
        return kept
    if len(kept) < len(events):
        return events
    usage = _usage_chunk(kept, stored)
    if usage is not None and kept:
        kept.insert(len(kept) - 1, usage)  # before [DONE]
    return kept


def _wants_usage(client_request: Mapping[str, Any]) -> bool:
    opts = client_request.get("stream_options")
    return isinstance(opts, dict) and opts.get("include_usage") is True


def _completion(stored: StoredAnswer) -> Json:
    """The stored answer as a ``chat.completion`` (with its usage)."""
    codec = codec_of(stored.api)
    if stored.streamed:
        events = _events(stored.payload)
        if stored.api == "responses":
            return responses_to_pivot(_completed_response(events))
        reader = codec.stream_to_pivot()
        chunks = [c for e in events for c in reader.feed(e)]
        chunks.extend(reader.end())
        completion = completion_of(chunks)
    else:
        body = orjson.loads(stored.payload)
        completion = responses_to_pivot(body) if stored.api == "responses" else codec.response_to_pivot(body)
    if not isinstance(completion.get("usage"), dict):  # a stream stored without its usage chunk
        completion["usage"] = usage_object(*stored.usage)
    return completion


def _completed_response(events: list[SseEvent]) -> Json:
    for event in reversed(events):
        if event.event == "response.completed" or b"response.completed" in event.raw[:64]:
            obj = event.json()
            if isinstance(obj, dict) and isinstance(obj.get("response"), dict):
                response: Json = obj["response"]
                return response
    raise UnusableAnswer("a stored Responses stream without its response.completed event")


def whole_answer(stored: StoredAnswer) -> bytes:
    """The answer as one JSON body in its API's shape."""
    if not stored.streamed:
        return stored.payload
    if stored.api == "responses":
        return orjson.dumps(_completed_response(_events(stored.payload)))
    return orjson.dumps(codec_of(stored.api).response_from_pivot(_completion(stored)))


def stream_answer(stored: StoredAnswer, client_request: Mapping[str, Any]) -> list[SseEvent]:
    """The answer as its API's stream events, as ``client_request`` asked for them."""
    if stored.streamed:
        events = _events(stored.payload)
        if stored.api == "chat":
            return _chat_usage(events, stored, _wants_usage(client_request))
        return events
    if stored.api == "responses":  # its own events, the stored response in the last one
        return responses_events(orjson.loads(stored.payload))
    writer: StreamWriter = codec_of(stored.api).stream_from_pivot(client_request)
    completion = _completion(stored)
    chunks = chunks_of(completion)
    if stored.api == "messages":
        # Anthropic says the prompt's tokens in message_start, made from the first chunk.
        chunks[0]["usage"] = completion["usage"]
    out = [e for chunk in chunks for e in writer.feed(chunk)]
    out.extend(writer.end())
    return out


class ReplayedEvents:
    """A hit's stream: every event in one batch (an ``EventSource``)."""

    __slots__ = ("_events",)

    def __init__(self, events: list[SseEvent]) -> None:
        self._events: list[SseEvent] | None = events

    async def next(self) -> list[SseEvent] | None:
        events, self._events = self._events, None
        return events

    async def abandoned(self) -> None:
        return

    def cut(self) -> None:
        return

    async def aclose(self) -> None:
        return


def reply_of(
    stored: StoredAnswer, stream: bool, client_request: Mapping[str, Any], headers: list[tuple[str, str]]
) -> Reply:
    """A hit's answer: a stream when the client asked for one, else the whole body."""
    if stream:
        events = stream_answer(stored, client_request)
        return Reply(200, [("content-type", "text/event-stream"), *headers], events=ReplayedEvents(events))
    return Reply(200, [("content-type", "application/json"), *headers], whole_answer(stored))


__all__ = ["CACHED_APIS", "finished", "reply_of"]
