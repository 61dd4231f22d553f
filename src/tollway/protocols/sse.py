"""Server-sent events: an incremental parser and the event value plugins see.

The parser keeps an incomplete trailing event across network reads (an event split
over two TCP segments must never be lost or cut), and normalises CRLF line ends.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.protocols import provider_json


class SseEvent:
    """One event. ``raw`` is the exact bytes to relay (ending in a blank line); the
    ``event`` name and ``data`` text are parsed from it only when asked for."""

    __slots__ = ("_data", "_name", "_parsed", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._name: str | None = None
        self._data: str | None = None
        self._parsed = False

    @classmethod
    def build(cls, data: str | bytes, event: str | None = None) -> SseEvent:
        if isinstance(data, str):
            data = data.encode()
        head = b"event: " + event.encode() + b"\n" if event else b""
        lines = b"".join(b"data: " + line + b"\n" for line in data.split(b"\n"))
        ev = cls(head + lines + b"\n")
        ev._name, ev._data, ev._parsed = event, data.decode(), True
        return ev

    def with_data(self, data: bytes) -> SseEvent:
        """This event with ``data`` in place of its data lines: its id, name, retry and
        comments kept (a client resuming the stream needs its id)."""
        kept = [line for line in self.raw.splitlines() if line and not line.startswith(b"data")]
        return SseEvent(b"\n".join([*kept, b"data: " + data]) + b"\n\n")

    @classmethod
    def of_json(cls, obj: Any, event: str | None = None) -> SseEvent:
        return cls.build(orjson.dumps(obj), event)

    def _parse(self) -> None:
        name: str | None = None
        data: list[str] = []
        for line in self.raw.decode("utf-8", "replace").split("\n"):
            if not line or line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data":
                data.append(value)
            elif field == "event":
                name = value
        self._name, self._data, self._parsed = name, "\n".join(data), True

    @property
    def event(self) -> str | None:
        if not self._parsed:
            self._parse()
        return self._name

    @property
    def data(self) -> str:
        if not self._parsed:
            self._parse()
        assert self._data is not None
        return self._data

    def json(self) -> Any:
        """The data parsed as JSON, or ``None`` when it is not JSON (``[DONE]``, pings)."""
        raw = self.raw
        # Most events are one ``data: `` line: parse its bytes as they are, without
        # decoding and splitting the event (the relay reads every event's usage).
        one_line = raw.startswith(b"data: ") and raw.find(b"\n") == len(raw) - 2
        try:
            return provider_json.loads(raw[6:-2] if one_line else self.data)
        except orjson.JSONDecodeError:
            return None

    def __repr__(self) -> str:
        return f"SseEvent({self.raw!r})"


# The largest event a provider may send (a model's stream event is a few kilobytes; a
# whole answer in one event, a few hundred): past it the stream is the provider's failure.
MAX_EVENT_BYTES = 16 << 20


# How the streams the gateway relays end (OpenAI chat and completions, Anthropic
# Messages, the Responses API), as the first bytes of their last event.
_TERMINAL_EVENTS = (
    b"event: message_stop",
    b"event:message_stop",
    b"event: response.completed",
    b"event:response.completed",
)


def is_terminal(raw: bytes) -> bool:
    """Whether an event (its raw bytes) is a stream's last: ``[DONE]``,
    ``message_stop``, ``response.completed``."""
    return b"[DONE]" in raw[:16] or raw.startswith(_TERMINAL_EVENTS)


def is_comment(raw: bytes) -> bool:
    """Whether an event (its raw bytes) is only comment lines (``: keep-alive``): no
    event for the client's ``EventSource``, so no first token either."""
    return raw[:1] == b":" and all(line[:1] == b":" for line in raw.splitlines() if line)


class EventTooLarge(ValueError):
    """An event (or what is not yet one) grew past ``MAX_EVENT_BYTES``."""


class SseParser:
    """Feed it bytes as they arrive; it returns the events completed so far.

    Linear in what it is fed, however the events are cut: a read that completes its
    events (the usual case) is split where it stands; an unfinished event's reads are
    kept as they came and joined once, when the read that ends it arrives (joining them
    on every read would cost the square of a long event's size), and each byte is
    searched for the blank line once. CRs are normalised per read, a trailing one held
    back in case its LF comes next. An event past ``max_event_bytes`` raises
    ``EventTooLarge``: the caller ends the stream as the provider's failure.
    """

    __slots__ = ("_cr", "_parts", "_size", "max_event_bytes")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        # The reads of the event not yet ended; the last one never ends in "\n\n".
        self._parts: list[bytes] = []
        self._size = 0
        self._cr = False
        self.max_event_bytes = max_event_bytes

    def feed(self, chunk: bytes) -> list[SseEvent]:
        if self._cr:
            chunk = b"\r" + chunk
            self._cr = False
        if b"\r" in chunk:
            if chunk.endswith(b"\r"):
                # A CR may be the first half of a CRLF split across reads: hold it back.
                self._cr = True
                chunk = chunk[:-1]
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        parts = self._parts
        if parts:
            # The event ends in this read, or at its seam with the last one; the pending
            # reads hold no blank line, so this read is all there is to search.
            pending = self._size
            if parts[-1].endswith(b"\n") and chunk.startswith(b"\n"):
                end = pending - 1
            else:
                end = chunk.find(b"\n\n")
                if end < 0:
                    if chunk:
                        parts.append(chunk)
                        self._size = pending = pending + len(chunk)
                        if pending > self.max_event_bytes:
                            raise EventTooLarge(f"a stream event grew past {self.max_event_bytes} bytes")
                    return []
                end += pending
            parts.append(chunk)
            buf = b"".join(parts)
            parts.clear()
            self._size = 0
        else:
            buf = chunk
            end = buf.find(b"\n\n")
        events: list[SseEvent] = []
        start = 0
        while end >= 0:
            if end > start:
                events.append(SseEvent(buf[start : end + 2]))
            start = end + 2
            end = buf.find(b"\n\n", start)
        if start < len(buf):
            rest = buf[start:]
            if len(rest) > self.max_event_bytes:
                raise EventTooLarge(f"a stream event grew past {self.max_event_bytes} bytes")
            parts.append(rest)
            self._size = len(rest)
        return events

    def flush(self) -> list[SseEvent]:
        """Whatever is left when the stream ends: a final event without its blank line,
        when what it holds is whole (``[DONE]``, or data that is a JSON object or array: a
        provider that leaves the blank line off its last event). Any other rest (a
        fragment of JSON, ``data: `` alone, an ``event:`` line without its data) is an
        event cut off mid-way, and is dropped, as the SSE standard has it: made whole, its fragment
        reached the client as an event (the OpenAI SDK failed parsing it, before the
        error event that said the stream broke)."""
        rest = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        if self._cr:
            self._cr = False
            if rest.endswith(b"\n"):
                # The CR held back ends a blank line: the event is whole, as in feed.
                return [SseEvent(rest + b"\n")] if len(rest) > 1 else []
        rest = rest.rstrip(b"\n")
        if not rest.strip():
            return []
        last = SseEvent(rest + b"\n\n")
        whole = last.data == "[DONE]" or isinstance(last.json(), dict | list)
        return [last] if whole else []
