"""Gemini's JSON-array stream read element by element (``ArrayReader``) and written back
as an array (``ArrayWriter``), however the network cuts it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollway.protocols.gemini.array_stream import ArrayBroken, ArrayReader, ArrayWriter
from tollway.protocols.sse import SseParser

CHUNKS: list[dict[str, Any]] = [
    {"candidates": [{"content": {"parts": [{"text": 'a "quoted" ] } [ { , \\ text\nline'}]}}]},
    {"candidates": [], "usageMetadata": {"promptTokenCount": 3}, "nested": [[{}], {"k": [1, 2]}]},
    {"text": "\\"},  # a string that ends in a backslash
    {"text": "é — ✓ \u2028"},
]


def google_array(chunks: list[Any]) -> bytes:
    """As Google writes it: pretty-printed chunks, ``\\r\\n,\\r\\n`` between them."""
    return b"[" + b"\r\n,\r\n".join(json.dumps(c, indent=2, ensure_ascii=False).encode() for c in chunks) + b"]"


def read(body: bytes, cuts: list[int]) -> bytes:
    reader = ArrayReader()
    out, at = b"", 0
    for cut in [*sorted(cuts), len(body)]:
        out += reader.feed(body[at:cut])
        at = cut
    reader.end()
    return out


@given(st.lists(st.integers(min_value=0, max_value=len(google_array(CHUNKS))), max_size=40))
def test_every_chunk_comes_out_whole_however_the_body_is_cut(cuts: list[int]) -> None:
    events = SseParser().feed(read(google_array(CHUNKS), cuts))
    assert [e.json() for e in events] == CHUNKS


def test_each_chunk_comes_out_as_soon_as_it_is_complete() -> None:
    reader = ArrayReader()
    first = json.dumps(CHUNKS[0]).encode()
    assert reader.feed(b"[" + first[:-1]) == b""
    assert reader.feed(first[-1:] + b"\r\n,") == b"data: " + first + b"\n\n"
    assert reader.feed(b'{"x": 1}') == b'data: {"x": 1}\n\n'
    assert reader.feed(b"]\r\n") == b""
    reader.end()


@pytest.mark.parametrize(
    "body",
    [
        b'{"candidates": []}',  # an object, not an array
        b'[{"a": 1}{"b": 2}]',  # no comma
        b'[{"a": 1},]',  # a comma with nothing after it
        b'[,{"a": 1}]',
        b'[{"a": 1}] {"b": 2}',  # more after the end
        b"[1, 2]",  # not objects
    ],
)
def test_what_is_no_array_of_objects_is_refused(body: bytes) -> None:
    with pytest.raises(ArrayBroken):
        read(body, [])


@pytest.mark.parametrize("body", [b"", b"[", b'[{"a": 1}', b'[{"a": 1},', b'[{"a": "unterminated'])
def test_an_array_cut_short_is_refused_at_its_end(body: bytes) -> None:
    reader = ArrayReader()
    reader.feed(body)
    with pytest.raises(ArrayBroken):
        reader.end()


def test_an_empty_array_is_no_chunk() -> None:
    assert read(b" [ \r\n ] ", []) == b""


def test_the_writer_gives_the_client_an_array_of_the_events_data() -> None:
    writer = ArrayWriter()
    events = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in CHUNKS)
    out = writer.write(events[:7]) + writer.write(events[7:]) + writer.write(b": keep-alive\n\n") + writer.close()
    assert json.loads(out) == CHUNKS
    assert ArrayWriter().close() == b"[]"  # (no chunk at all: still an array)
