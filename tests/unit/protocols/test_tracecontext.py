"""W3C Trace Context's ``traceparent`` (protocols/tracecontext.py): what is continued,
what starts a new trace, and what the gateway sends on."""

from __future__ import annotations

import pytest

from tollway.protocols.tracecontext import TraceParent, format_traceparent, parse

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def test_a_valid_traceparent_is_read() -> None:
    assert parse(f"00-{TRACE}-{PARENT}-01") == TraceParent(int(TRACE, 16), int(PARENT, 16), True)
    assert parse(f"00-{TRACE}-{PARENT}-00") == TraceParent(int(TRACE, 16), int(PARENT, 16), False)
    # Only the sampled bit is read; other flags are the future's.
    assert parse(f"00-{TRACE}-{PARENT}-03") == TraceParent(int(TRACE, 16), int(PARENT, 16), True)
    assert parse(f" 00-{TRACE}-{PARENT}-01\t") is not None  # optional whitespace around a value


def test_a_later_version_is_read_for_its_first_four_fields() -> None:
    assert parse(f"cc-{TRACE}-{PARENT}-01") == TraceParent(int(TRACE, 16), int(PARENT, 16), True)
    assert parse(f"cc-{TRACE}-{PARENT}-01-what-the-future-adds") is not None
    assert parse(f"cc-{TRACE}-{PARENT}-01x") is None  # a 56th character must be "-"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        f"00-{TRACE}-{PARENT}",  # no flags
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
        f"ff-{TRACE}-{PARENT}-01",  # version ff is invalid
        f"00-{TRACE.upper()}-{PARENT}-01",  # upper-case hex
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE[:-1]}-{PARENT}-01",  # short trace id
        f"00-{TRACE}-{PARENT}0-01",  # long parent id
        f"00_{TRACE}_{PARENT}_01",  # wrong separators
        f"0g-{TRACE}-{PARENT}-01",  # not hex
        f"00-{TRACE}-{PARENT}-1",  # short flags
    ],
)
def test_what_must_not_be_continued_is_refused(value: str) -> None:
    assert parse(value) is None


def test_the_traceparent_sent_on_names_the_span_as_parent_and_is_sampled() -> None:
    value = format_traceparent(int(TRACE, 16), 0xABC)
    assert value == f"00-{TRACE}-0000000000000abc-01"
    assert parse(value) == TraceParent(int(TRACE, 16), 0xABC, True)
    assert format_traceparent(1, 1) == f"00-{'0' * 31}1-{'0' * 15}1-01"
