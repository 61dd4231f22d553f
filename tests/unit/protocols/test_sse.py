"""The incremental server-sent-events parser (protocols/sse.py): no event is lost, cut or merged,
however the bytes are split across network reads."""

from __future__ import annotations

import itertools
import json
import sys
from types import FrameType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.protocols import sse
from tollway.protocols.sse import MAX_EVENT_BYTES, EventTooLarge, SseEvent, SseParser

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


def reference(stream: bytes) -> list[bytes]:
    """What the parser must make of a whole stream, written the obvious way: every line
    end an LF, an event wherever a blank line ends text, a last event without one when
    what it holds is whole (a JSON object or array, ``[DONE]``), else none (cut mid-way)."""
    text = stream.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    events: list[bytes] = []
    start = 0
    while (end := text.find(b"\n\n", start)) >= 0:
        if end > start:
            events.append(text[start : end + 2])
        start = end + 2
    rest = text[start:].rstrip(b"\n")
    if not rest.strip():
        return events
    last = SseEvent(rest + b"\n\n")
    whole = last.data == "[DONE]" or isinstance(last.json(), dict | list)
    return [*events, last.raw] if whole else events


def cut(stream: bytes, at: list[int]) -> list[bytes]:
    """The stream split at the given offsets (in order, possibly repeated: empty reads)."""
    bounds = [0, *at, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


_SEARCHES = {"find", "rfind", "index", "rindex", "count", "replace", "split", "partition"}


def searched(parser: SseParser, chunks: list[bytes]) -> tuple[list[SseEvent], int]:
    """The events, and the work the parser did for them: the length of every buffer it
    searched or rewrote, whole, however little of it the search looked at: an upper
    bound on the bytes it scanned (each CR rewrite counts as a scan of its read). A
    parser that searches its pending buffer again on every read makes it grow as the
    square of what it is fed."""
    work = 0

    def count(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal work
        if event == "c_call" and frame.f_code.co_filename == sse.__file__ and arg.__name__ in _SEARCHES:
            target = getattr(arg, "__self__", None)
            if isinstance(target, bytes | bytearray):
                work += len(target)

    events: list[SseEvent] = []
    sys.setprofile(count)
    try:
        for chunk in chunks:
            events += parser.feed(chunk)
        events += parser.flush()
    finally:
        sys.setprofile(None)
    return events, work


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


def test_flush_returns_a_last_event_without_its_blank_line_when_it_is_whole() -> None:
    parser = SseParser()
    assert parser.feed(b'data: a\n\ndata: {"b": 1}') != []
    assert parsed(parser.flush()) == [(None, '{"b": 1}')]
    assert parser.flush() == []
    assert SseParser().flush() == []
    done = SseParser()
    done.feed(b"data: [DONE]")
    assert parsed(done.flush()) == [(None, "[DONE]")]


def test_an_event_cut_off_mid_way_is_dropped_at_the_end() -> None:
    """A provider that closes inside an event (``data: {"choices": [{"de``): made whole,
    its fragment reached the client as an event, and the OpenAI SDK failed on it before
    the error event after it (a judge's Medium). The SSE standard drops it."""
    for rest in (b'data: {"choices": [{"de', b"data: " + b"a" * 5000, b'data: {"a": 1}\ndata: {"b', b"data: ",
                 b"data:", b"event: mess", b"id: 7", b"data: 12", b"event: message_stop\ndata: "):  # fmt: skip
        parser = SseParser()
        assert parser.feed(b"data: whole\n\n" + rest) != []
        assert parser.flush() == [], rest[:30]


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


@pytest.mark.parametrize(
    "shape",
    ["one line", "many lines", "crlf lines", "reads ending in cr"],
)
def test_a_long_event_in_small_reads_is_searched_in_linear_time(shape: str) -> None:
    # 1 MiB in 1 KiB reads: searching all that is pending on every read would touch
    # ~512 MiB; each read searched (and its CRs rewritten) on its own, and the joined
    # event once, touches a few times what was fed.
    piece = {
        "one line": b"x" * 1024,
        "many lines": b"data: " + b"x" * 1017 + b"\n",
        "crlf lines": b"data: " + b"x" * 1016 + b"\r\n",
        "reads ending in cr": b"\ndata: " + b"x" * 1016 + b"\r",
    }[shape]
    chunks = [b"data: ", *[piece] * 1024, b"\n\n", b'data: {"after": 1}\n\n']
    fed = sum(map(len, chunks))
    events, work = searched(SseParser(), chunks)
    assert [e.raw for e in events] == reference(b"".join(chunks))
    assert len(events) == 2 and len(events[0].raw) > 1000 * 1024
    assert work <= 8 * fed, f"searched {work} bytes for {fed} fed"


def test_many_small_events_in_one_read_are_searched_once() -> None:
    stream = b"".join(b'data: {"n": %d}\n\n' % i for i in range(2000))
    events, work = searched(SseParser(), [stream])
    assert len(events) == 2000
    # Each search starts where the last event ended; counting every buffer whole
    # (the upper bound) is 2000 searches of the whole read.
    assert work <= 2001 * len(stream)
    events, work = searched(SseParser(), cut(stream, list(range(7, len(stream), 7))))
    assert len(events) == 2000 and work <= 4 * len(stream)


TERMINATORS = [b"\n\n", b"\r\n\r\n", b"\r\r", b"\r\n\n", b"\n\r\n", b"\r\n\r", b"\r\r\n"]


@pytest.mark.parametrize(
    "term", TERMINATORS, ids=[t.decode().replace("\r", "CR").replace("\n", "LF") for t in TERMINATORS]
)
def test_a_terminator_cut_into_any_pieces_ends_the_same_events(term: bytes) -> None:
    # Every way of cutting the blank line (and the bytes either side of it) into reads,
    # empty reads included: the events are those of one read.
    stream = b"data: a" + term + b"data: b" + term + b"data: c"
    expected = reference(stream)
    assert [e.raw for e in feed_all(SseParser(), [stream])] == expected
    for first in (7, 7 + len(term) + 7):  # the two terminators, in turn
        region = range(first - 1, first + len(term) + 2)
        for n in range(len(region) + 1):
            for at in itertools.combinations_with_replacement(region, n):
                got = feed_all(SseParser(), cut(stream, list(at)))
                assert [e.raw for e in got] == expected, f"cut at {at}"


_PIECES = [
    b"data: ",
    b"data:",
    b"event: e",
    b": c",
    b"id: 1",
    b"x",
    b"{}",
    b"\xc3\xa9",
    b" ",
    b":",
    b"\n",
    b"\r",
    b"\r\n",
]


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from(_PIECES), max_size=60).map(b"".join),
    st.lists(st.integers(min_value=0, max_value=400), max_size=12).map(sorted),
)
def test_any_stream_cut_anywhere_gives_the_events_of_the_reference(stream: bytes, at: list[int]) -> None:
    # Blank lines in every spelling (LF, CR, CRLF and mixes), comments, names, lines
    # with no value, trailing events without a blank line; the stream cut at random
    # offsets (empty reads included).
    at = [min(a, len(stream)) for a in at]
    expected = reference(stream)
    whole = feed_all(SseParser(), [stream])
    chunked = feed_all(SseParser(), cut(stream, at))
    assert [e.raw for e in whole] == expected
    assert [e.raw for e in chunked] == expected
    assert [(e.event, e.data) for e in chunked] == [(e.event, e.data) for e in whole]


def test_the_bound_is_16_mib_by_default() -> None:
    assert MAX_EVENT_BYTES == 16 << 20
    assert SseParser().max_event_bytes == MAX_EVENT_BYTES


def test_an_event_of_exactly_the_bound_passes_and_one_byte_more_does_not() -> None:
    # What is held is the event but for the LF that ends it.
    event = b"data: " + b"x" * (1000 - 7) + b"\n\n"
    for reads in ([event[:-1], b"\n"], [event[i : i + 10] for i in range(0, len(event), 10)], [event]):
        assert [e.raw for e in feed_all(SseParser(max_event_bytes=1000), reads)] == [event]
    parser = SseParser(max_event_bytes=1000)
    parser.feed(event[:-1])
    with pytest.raises(EventTooLarge):
        parser.feed(b"x")
    with pytest.raises(EventTooLarge):
        SseParser(max_event_bytes=1000).feed(b"data: a\n\n" + event[:-2] + b"x\n")


def test_the_bound_is_per_event_not_per_stream() -> None:
    parser = SseParser(max_event_bytes=1000)
    event = b"data: " + b"y" * 400 + b"\n\n"
    stream = event * 50
    assert len(feed_all(parser, [stream[i : i + 333] for i in range(0, len(stream), 333)])) == 50


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_an_event_of_many_lines_past_the_bound_is_refused(ending: bytes) -> None:
    # No single line is long: the event is, and it is never ended.
    parser = SseParser(max_event_bytes=10_000)
    line = b"data: " + b"z" * 90 + ending
    with pytest.raises(EventTooLarge, match="10000 bytes"):
        for _ in range(200):
            parser.feed(line)


def test_a_line_past_the_default_bound_is_refused_before_it_is_all_read() -> None:
    parser = SseParser()
    piece = b"x" * (64 << 10)
    parser.feed(b"data: ")
    reads = 0
    with pytest.raises(EventTooLarge):  # a 128 MiB line, as the red team sent it
        while reads < 128 << 4:
            reads += 1
            parser.feed(piece)
    assert reads == MAX_EVENT_BYTES // len(piece)


def test_an_event_past_the_bound_is_refused() -> None:
    parser = SseParser(max_event_bytes=1000)
    parser.feed(b"data: " + b"x" * 500)
    with pytest.raises(EventTooLarge):
        parser.feed(b"x" * 600)
    with pytest.raises(EventTooLarge):
        SseParser(max_event_bytes=1000).feed(b"data: ok\n\ndata: " + b"y" * 2000)


@pytest.mark.parametrize(
    ("raw", "comment"),
    [
        (b": keep-alive\n\n", True),
        (b":\n:ping\r\n\r\n", True),
        (b": note\ndata: {}\n\n", False),  # a comment line in an event with data
        (b"data: {}\n\n", False),
        (b"event: ping\n\n", False),
    ],
)
def test_an_event_of_comment_lines_only_is_a_comment(raw: bytes, comment: bool) -> None:
    assert sse.is_comment(raw) is comment
