"""The incremental server-sent-events parser (protocols/sse.py): no event is lost, cut or merged,
however the bytes are split across network reads."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.protocols.sse import EventTooLarge, SseEvent, SseParser

# What a provider might send: names, multi-line data, comments, non-ASCII text, [DONE].
STREAM = (
    b": keep-alive comment\n\n"
    b'data: {"choices": [{"delta": {"content": "h\xc3\xa9llo"}}]}\n\n'
    b"event: message_delta\n"
    b"data: line one\n"
    b": a comment inside an event\n"
    b"data: line two\n\n"
    b"id: 7\n"
    b"retry: 100\n"
    b"data:no-space\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    (None, ""),
    (None, '{"choices": [{"delta": {"content": "héllo"}}]}'),
    ("message_delta", "line one\nline two"),
    (None, "no-space"),
    (None, "[DONE]"),
]


def parsed(events: list[SseEvent]) -> list[tuple[str | None, str]]:
    return [(e.event, e.data) for e in events]


def feed_all(parser: SseParser, chunks: list[bytes]) -> list[SseEvent]:
    events: list[SseEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events + parser.flush()


def test_a_whole_stream_in_one_read() -> None:
    assert parsed(feed_all(SseParser(), [STREAM])) == EXPECTED


def test_raw_bytes_are_relayed_exactly() -> None:
    events = feed_all(SseParser(), [STREAM])
    assert b"".join(e.raw for e in events) == STREAM


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_a_split_at_every_byte_boundary_loses_nothing(crlf: bool) -> None:
    stream = STREAM.replace(b"\n", b"\r\n") if crlf else STREAM
    for cut in range(len(stream) + 1):
        parser = SseParser()
        assert parsed(feed_all(parser, [stream[:cut], stream[cut:]])) == EXPECTED, f"split at byte {cut}"


def test_one_byte_at_a_time() -> None:
    for stream in (STREAM, STREAM.replace(b"\n", b"\r\n"), STREAM.replace(b"\n", b"\r")):
        chunks = [stream[i : i + 1] for i in range(len(stream))]
        assert parsed(feed_all(SseParser(), chunks)) == EXPECTED


def test_events_are_returned_as_soon_as_they_are_complete() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\n") == []
    assert parsed(parser.feed(b"\ndata: b")) == [(None, "a")]
    assert parsed(parser.feed(b"\n\n")) == [(None, "b")]


@pytest.mark.parametrize("ending", [b"\r\n", b"\r", b"\n"], ids=["crlf", "cr", "lf"])
def test_line_endings_are_normalised(ending: bytes) -> None:
    stream = b"event: e" + ending + b"data: a" + ending + b"data: b" + ending + ending
    events = feed_all(SseParser(), [stream])
    assert parsed(events) == [("e", "a\nb")]


def test_a_crlf_split_across_reads_is_one_line_end() -> None:
    parser = SseParser()
    events = parser.feed(b"data: a\r")
    events += parser.feed(b"\n\r")
    events += parser.feed(b"\ndata: b\r\n\r\n")
    assert parsed(events) == [(None, "a"), (None, "b")]
    assert parser.flush() == []


def test_an_event_ending_in_a_lone_cr_is_not_held_back_for_ever() -> None:
    # The CR at the end of a read may be half a CRLF, but once the next read starts with
    # something else the event must come out, and flush must not lose it either.
    parser = SseParser()
    events = parser.feed(b"data: a\r\r")
    events += parser.feed(b"data: b\r\r")
    assert parsed(events)[0] == (None, "a")
    assert parsed(events + parser.flush()) == [(None, "a"), (None, "b")]


def test_comments_carry_no_data() -> None:
    events = feed_all(SseParser(), [b": ping\n\ndata: x\n: not data\n\n"])
    assert parsed(events) == [(None, ""), (None, "x")]


def test_only_one_leading_space_is_removed_from_a_value() -> None:
    events = feed_all(SseParser(), [b"data:  two spaces\n\ndata:\n\n"])
    assert parsed(events) == [(None, " two spaces"), (None, "")]


def test_blank_lines_between_events_make_no_events() -> None:
    events = feed_all(SseParser(), [b"\n\n\ndata: a\n\n\n\n\ndata: b\n\n"])
    assert parsed(events) == [(None, "a"), (None, "b")]


def test_flush_returns_a_last_event_without_its_blank_line() -> None:
    parser = SseParser()
    assert parser.feed(b"data: a\n\ndata: tail") != []
    assert parsed(parser.flush()) == [(None, "tail")]
    assert parser.flush() == []
    assert SseParser().flush() == []


def test_json_is_parsed_from_data_and_none_when_not_json() -> None:
    events = feed_all(SseParser(), [b'data: {"a":\ndata: 1}\n\ndata: [DONE]\n\n'])
    assert events[0].json() == {"a": 1}
    assert events[1].json() is None


def test_build_and_of_json_round_trip() -> None:
    built = SseEvent.build("first\nsecond", event="note")
    assert built.raw == b"event: note\ndata: first\ndata: second\n\n"
    again = feed_all(SseParser(), [built.raw])
    assert parsed(again) == [("note", "first\nsecond")]
    obj = {"choices": [], "usage": {"prompt_tokens": 1}}
    as_json = SseEvent.of_json(obj)
    assert as_json.json() == obj
    assert json.loads(feed_all(SseParser(), [as_json.raw])[0].data) == obj


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")), max_size=6),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
    st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=20),
)
def test_any_cut_of_any_stream_gives_what_one_read_gives(lines: list[bytes], ending: bytes, cuts: list[int]) -> None:
    # Events of data lines, blank lines between, the stream cut anywhere (terminators and
    # CRLFs split across reads included).
    stream = b"".join(b"data: " + line + ending + ending for line in lines)
    whole = SseParser()
    expected = [e.raw for e in whole.feed(stream) + whole.flush()]
    parser = SseParser()
    got: list[bytes] = []
    at, i = 0, 0
    while at < len(stream):
        step = cuts[i % len(cuts)]
        got += [e.raw for e in parser.feed(stream[at : at + step])]
        at, i = at + step, i + 1
    got += [e.raw for e in parser.flush()]
    assert got == expected


def test_a_long_event_in_small_reads_is_joined_once() -> None:
    # 8 MiB in 1 KiB reads: joining the pending reads on every read would copy ~32 GiB.
    parser = SseParser()
    piece = b"x" * 1024
    assert parser.feed(b"data: ") == []
    for _ in range(8 * 1024):
        assert parser.feed(piece) == []
    (event,) = parser.feed(b"\n\n")
    assert len(event.raw) == 6 + 8 * 1024 * 1024 + 2


def test_an_event_past_the_bound_is_refused() -> None:
    parser = SseParser(max_event_bytes=1000)
    parser.feed(b"data: " + b"x" * 500)
    with pytest.raises(EventTooLarge):
        parser.feed(b"x" * 600)
    with pytest.raises(EventTooLarge):
        SseParser(max_event_bytes=1000).feed(b"data: ok\n\ndata: " + b"y" * 2000)
