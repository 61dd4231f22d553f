"""Gemini's ``streamGenerateContent`` without ``alt=sse``: Google's REST default, the
same chunks as the ``alt=sse`` stream, written out as one JSON array as they come
(``[{…}\\r\\n,\\r\\n{…}\\r\\n]``, each chunk pretty-printed over many lines).

The gateway relays it as it relays the ``alt=sse`` stream, chunk by chunk, never whole:
``ArrayReader`` turns the provider's array into that stream's events as its elements
complete (one ``data:`` event each), so the relay, its usage, the plugins' stream hooks
and a cut-off stream are the same code for both; ``ArrayWriter`` writes the events that
reach the client back as the array the client asked for.
"""

from __future__ import annotations

import re

from tollway.protocols.sse import MAX_EVENT_BYTES, SseEvent, SseParser, is_comment

# Outside a string: what changes the nesting, or begins a string.
_STRUCTURE = re.compile(rb'[\[\]{}"]')
# Inside a string: its end, or an escape.
_STRING_END = re.compile(rb'["\\]')
_WHITESPACE = frozenset(b" \t\r\n")
_OPEN, _CLOSE, _COMMA, _OBJECT = ord("["), ord("]"), ord(","), ord("{")


class ArrayBroken(ValueError):
    """The provider's body is not a JSON array of objects (or one past the bound)."""


# Where the reader is between the array's elements: before the array, after its "[",
# after an element, after a comma, after its "]".
_START, _FIRST, _NEXT, _ELEMENT, _DONE = range(5)


class ArrayReader:
    """The provider's JSON array, fed as it arrives; each element, once complete, out as
    one event (``data: <element>``: its line breaks, which JSON allows only between
    tokens, made spaces). ``end`` raises ``ArrayBroken`` for an array cut short."""

    __slots__ = ("_depth", "_element", "_escaped", "_expect", "_in_string")

    def __init__(self) -> None:
        self._expect = _START
        self._depth = 0  # inside an element: its nesting
        self._in_string = False
        self._escaped = False  # a backslash ended the last piece, inside a string
        self._element = bytearray()

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        i, n = 0, len(data)
        while i < n:
            if self._depth == 0:
                self._between(data[i])
                i += 1
                continue
            start = i
            if self._escaped:  # (the byte a backslash at the last piece's end escapes)
                self._escaped = False
                i += 1
            elif self._in_string:
                found = _STRING_END.search(data, i)
                if found is None:
                    i = n
                elif data[found.start()] == 0x5C:  # a backslash: the byte after it is its
                    i = found.start() + 2
                    if i > n:
                        self._escaped, i = True, n
                else:
                    self._in_string = False
                    i = found.end()
            else:
                found = _STRUCTURE.search(data, i)
                if found is None:
                    i = n
                else:
                    i = found.end()
                    byte = data[found.start()]
                    if byte == 0x22:
                        self._in_string = True
                    elif byte in (_OPEN, _OBJECT):
                        self._depth += 1
                    else:
                        self._depth -= 1
            self._element += data[start:i]
            if len(self._element) > MAX_EVENT_BYTES:
                raise ArrayBroken(f"a chunk of the array is past {MAX_EVENT_BYTES} bytes")
            if self._depth == 0:
                # (Line breaks only between tokens: a JSON string holds none raw.)
                element = bytes(self._element).replace(b"\r", b" ").replace(b"\n", b" ")
                out.append(b"data: " + element + b"\n\n")
                self._element = bytearray()
                self._expect = _NEXT
        return b"".join(out)

    def _between(self, byte: int) -> None:
        """One byte between the elements (or before the array, or after it)."""
        expect = self._expect
        if byte in _WHITESPACE:
            return
        if expect == _START and byte == _OPEN:
            self._expect = _FIRST
        elif byte == _OBJECT and expect in (_FIRST, _ELEMENT):
            self._depth = 1
            self._element += b"{"
        elif byte == _COMMA and expect == _NEXT:
            self._expect = _ELEMENT
        elif byte == _CLOSE and expect in (_FIRST, _NEXT):
            self._expect = _DONE
        elif expect == _START:
            raise ArrayBroken("the answer is not a JSON array")
        else:
            raise ArrayBroken(f"unexpected {chr(byte)!r} between the array's chunks")

    def end(self) -> None:
        if self._expect != _DONE:
            raise ArrayBroken("the answer ended before its array did")


class ArrayWriter:
    """The events that reach the client, written as the JSON array it asked for: each
    event's data an element (a comment, ``: keep-alive``, is none); ``close`` ends it."""

    __slots__ = ("_opened", "_parser")

    def __init__(self) -> None:
        self._parser = SseParser()
        self._opened = False

    def write(self, events: bytes) -> bytes:
        return self._elements(self._parser.feed(events))

    def close(self) -> bytes:
        tail = self._elements(self._parser.flush())
        return tail + b"]" if self._opened else b"[]"

    def _elements(self, events: list[SseEvent]) -> bytes:
        out: list[bytes] = []
        for event in events:
            data = _data_of(event)
            if data:
                out.append((b",\r\n" if self._opened else b"[") + data)
                self._opened = True
        return b"".join(out)


def _data_of(event: SseEvent) -> bytes:
    return b"" if is_comment(event.raw) else event.data.encode()


__all__ = ["ArrayBroken", "ArrayReader", "ArrayWriter"]
