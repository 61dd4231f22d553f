"""The interface every wire format implements, around one pivot: OpenAI chat completions.

A request from a client in protocol A to a provider in protocol B crosses the pivot:

    client body ──A.request_to_pivot──▶ chat ──B.request_from_pivot──▶ provider body
    client body ◀─A.response_from_pivot── chat ◀─B.response_to_pivot── provider body
    client SSE  ◀─A.stream_from_pivot()── chunks ◀─B.stream_to_pivot()── provider SSE
    client error◀─A.error_from_pivot──── OpenAI error ◀─B.error_to_pivot── provider error

The pivot shapes are OpenAI's: a chat-completions request body, a ``chat.completion``
object, ``chat.completion.chunk`` objects, and ``{"error": {"message", "type", "code"}}``.
Two pivot conventions go beyond what OpenAI itself sends:

- a stream's usage arrives as OpenAI's extra final chunk ``{"choices": [], "usage": {…}}``
  whenever the native stream reports usage (whatever the client asked for; a writer that
  must hide it does);
- an error in the middle of a stream is a pivot "chunk" ``{"error": {…}}`` without
  ``choices``; writers turn it into the client protocol's error event.

Codecs are pure: no I/O, no clock except ``created`` timestamps, no shared state. Stream
readers and writers are stateful and live for one stream. A request that cannot be said
in the target protocol raises ``TranslationError`` (the caller answers 400); fields with
no equivalent that only tune generation are dropped, as each module documents.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tollway.protocols.sse import SseEvent

Json = dict[str, Any]


class TranslationError(ValueError):
    """The body cannot be expressed in the target protocol (or is not a valid body of
    the source protocol). The message names the field and is safe to show the client.

    ``param``: the field the message begins with (``n``, ``tools[0]``,
    ``messages[2].content[0]``), which OpenAI's errors carry apart for clients that read
    it to know what to drop; None when the message begins with no field."""

    @property
    def param(self) -> str | None:
        found = _LEADING_FIELD.match(str(self))
        return found[1] if found is not None and found[1] not in _NOT_FIELDS else None


# A field path at the start of a message, then a space or a colon.
_LEADING_FIELD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*(?:\[\d+\]|\.[A-Za-z_][A-Za-z0-9_]*)*)[ :]")
_NOT_FIELDS = frozenset({"the", "a", "an", "only", "this"})


@dataclass(frozen=True, slots=True)
class ApiPath:
    """A native API path relative to the provider's API root (as ``Provider.endpoint``
    takes it: ``/chat/completions``, ``/messages``, ``/models/m:generateContent``) and
    the query string it needs (``alt=sse``), without ``?``."""

    path: str
    query: str = ""


class StreamReader(Protocol):
    """Native stream → pivot chunks, for one stream.

    ``feed`` takes each SSE event in order (as ``tollway.protocols.sse.SseParser`` yields them,
    pings and ``[DONE]`` included) and returns the pivot chunks it completes, possibly
    none. ``end`` is called once when the native stream is over (cleanly or not) and
    returns whatever is still owed, such as the usage chunk of a format that has no
    final event.
    """

    def feed(self, event: SseEvent) -> list[Json]: ...

    def end(self) -> list[Json]: ...


class StreamWriter(Protocol):
    """Pivot chunks → native SSE events, for one stream.

    ``feed`` takes each pivot chunk in order and returns the events to send now;
    ``end`` is called once after the last chunk and returns the closing events
    (``data: [DONE]``, Anthropic's ``message_delta`` + ``message_stop``)."""

    def feed(self, chunk: Json) -> list[SseEvent]: ...

    def end(self) -> list[SseEvent]: ...


class Codec(Protocol):
    """One wire format, both ways around the pivot.

    The ``*_to_pivot`` methods read this format; the ``*_from_pivot`` methods write it.
    Inputs are never mutated; outputs may share unchanged sub-objects with inputs.
    """

    name: str
    """``"openai"``, ``"anthropic"`` or ``"gemini"``: what ``Provider.protocol`` names."""

    pivot_fields: Mapping[str, str]
    """The pivot's top-level fields this format's requests name otherwise
    (``parallel_tool_calls`` is Anthropic's ``tool_choice.disable_parallel_tool_use``):
    a refusal of the field names what the client sent."""

    def api_path(self, stream: bool, model: str) -> ApiPath:
        """Where a chat call in this format goes, relative to the provider's API root."""
        ...

    def request_to_pivot(self, body: Json) -> Json:
        """A request body in this format → an OpenAI chat-completions request.
        Raises ``TranslationError`` when the body is not a valid request."""
        ...

    def request_from_pivot(self, chat: Json) -> Json:
        """An OpenAI chat-completions request → the body this format's provider gets.
        ``chat["model"]`` is already the upstream model name. Raises
        ``TranslationError`` for what this format cannot express."""
        ...

    def response_to_pivot(self, body: Json) -> Json:
        """A non-stream answer in this format → a ``chat.completion`` object."""
        ...

    def response_from_pivot(self, chat: Json) -> Json:
        """A ``chat.completion`` object → a non-stream answer in this format."""
        ...

    def stream_to_pivot(self) -> StreamReader:
        """A fresh reader for one native stream."""
        ...

    def stream_from_pivot(self, client_request: Mapping[str, Any]) -> StreamWriter:
        """A fresh writer for one stream to a client; ``client_request`` is the body the
        client sent (in this format), for what the client asked for (usage, model)."""
        ...

    def error_to_pivot(self, status: int, body: bytes) -> bytes:
        """A provider's error body in this format → OpenAI's error body. Bodies that are
        not this format's error shape become the message, so nothing is lost."""
        ...

    def error_from_pivot(self, status: int, body: bytes) -> bytes:
        """OpenAI's error body → this format's error body, for a client of this format."""
        ...

    def model_ids(self, body: Any) -> list[str]:
        """The model names in this format's model-list answer."""
        ...
