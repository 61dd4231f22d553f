"""Records a database can store, and their journal lines (usage/storable.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.support.usage_support import DAY1, rec
from tollway.exchange import Attempt
from tollway.usage.record import UsageRecord
from tollway.usage.storable import MAX_ATTRIBUTES, MAX_TEXT, decode, encode
from tollway.usage.store import record_of_inserted, row_of


def _stored(record: UsageRecord) -> dict[str, Any]:
    """What the database would get for ``record``, as the SPEC record it holds."""
    row, line = encode(1, record)
    assert line is not None and b"\\u0000" not in line
    return record_of_inserted(row)


def test_a_plain_record_is_kept_as_it_is_and_its_line_reads_back() -> None:
    r = rec(DAY1, "alice", request_id="abc")._replace(
        attempts=[Attempt("up", 500, 1.5), Attempt("backup", 200, 2.25)], attributes={"team": "blue"}, ttft_ms=3.5
    )
    row, line = encode(42, r)
    assert row == row_of(r, 42) and line is not None and line.endswith(b"\n")
    assert decode(line) == row
    assert record_of_inserted(decode(line)) == r.as_dict()


def test_nul_is_removed_from_every_text_field_and_attribute() -> None:
    r = rec(DAY1, "ali\x00ce", request_id="r\x001")._replace(
        model_requested="gpt\x00-4o", reason="x\x00", client_ip="\x00", attributes={"k\x00": ["v\x00", {"n": "\x00"}]}
    )
    stored = _stored(r)
    got = [stored[k] for k in ("consumer", "request_id", "model_requested", "reason", "client_ip")]
    assert got == ["alice", "r1", "gpt-4o", "x", ""]
    assert stored["attributes"] == {"k": ["v", {"n": ""}]}


def test_long_text_is_cut_and_long_attributes_keep_the_entries_that_fit() -> None:
    r = rec(DAY1, "alice")._replace(
        model_requested="m" * 100_000,
        request_id="é" * 600,
        attributes={"first": "a" * 100, "huge": "b" * MAX_ATTRIBUTES, "last": 7},
    )
    stored = _stored(r)
    assert stored["model_requested"] == "m" * MAX_TEXT and stored["request_id"] == "é" * MAX_TEXT
    assert stored["attributes"] == {"first": "a" * 100, "last": 7}


def test_text_just_within_the_limits_is_untouched() -> None:
    r = rec(DAY1, "c" * MAX_TEXT)._replace(attributes={"a": "x" * 2000})
    assert encode(1, r)[0] == row_of(r, 1)


def test_lone_surrogates_become_replacement_characters() -> None:
    r = rec(DAY1, "alice")._replace(model_requested="gpt\ud800", attributes={"q": "\udcff", "pair": "\ud83d\ude00"})
    stored = _stored(r)
    assert stored["model_requested"] == "gpt\ufffd"
    assert stored["attributes"] == {"q": "\ufffd", "pair": "😀"}


def test_attribute_values_json_cannot_carry_become_text() -> None:
    odd: dict[Any, Any] = {"big": 2**70, 3: "int key", "obj": Attempt("p", 1, 2.0), "deep": [[[[1]]]]}
    assert _stored(rec(DAY1, "alice")._replace(attributes=odd))["attributes"] == {
        "big": str(2**70),
        "3": "int key",
        "obj": "Attempt(provider='p', status=1, latency_ms=2.0)",
        "deep": [[[[1]]]],
    }


def test_a_count_beyond_64_bits_cannot_be_journaled() -> None:
    row, line = encode(1, rec(DAY1, "alice")._replace(input_tokens=2**64))
    assert line is None  # the writer puts it in the dead-letter file at once
    assert record_of_inserted(row)["input_tokens"] == 2**64


@pytest.mark.parametrize(
    "line",
    [
        b'[1772360100000,"2026-03-01","2026-03-01T10:00:00Z","r","chat","al',  # cut short by a kill
        b"not json",
        b'{"ts_ms": 1}',
        b"[1, 2, 3]",
        b'[1772360100000,"2026-03-01","2026-03-01T10:00:00Z","r",null,null,null,null,null,200,null,null,0,1,2,0,0,'
        b'0,null,1.0,null,null,"[]",null,"key"]',
        b'[1772360100000,"2026-03-01","2026-03-01T10:00:00Z","r",null,null,null,null,null,"200",null,null,0,1,2,0,0,'
        b'0,null,1.0,null,null,"[]",null,7]',
    ],
)
def test_what_is_not_a_journal_line_is_refused(line: bytes) -> None:
    with pytest.raises(ValueError):
        decode(line)


def test_a_journal_line_written_before_records_kept_their_api_is_still_read() -> None:
    row, line = encode(7, rec(DAY1, "alice"))
    assert line is not None
    old = orjson.loads(line)
    del old[-7:-1]  # the api column, and the cache, MCP and cache-write columns after it, before the key
    read = decode(orjson.dumps(old))
    assert read == (*row[:-7], None, None, None, None, None, 0, 7)
    assert record_of_inserted(read)["api"] is None and record_of_inserted(row)["api"] == "chat"


def test_a_journal_line_written_before_records_kept_what_ai_cache_made_of_them_is_still_read() -> None:
    row, line = encode(7, rec(DAY1, "alice"))
    assert line is not None
    old = orjson.loads(line)
    del old[-6:-1]  # cache and cost_saved_usd, and the MCP and cache-write columns after them
    read = decode(orjson.dumps(old))
    assert read == (*row[:-6], None, None, None, None, 0, 7)
    assert record_of_inserted(read)["api"] == "chat" and record_of_inserted(read)["cache"] is None


def test_a_journal_line_written_before_records_kept_an_mcp_calls_method_and_tool_is_still_read() -> None:
    row, line = encode(7, rec(DAY1, "alice")._replace(cache="miss", mcp_method="tools/call", mcp_tool="echo"))
    assert line is not None
    assert record_of_inserted(row)["mcp_tool"] == "echo"
    old = orjson.loads(line)
    del old[-4:-1]  # mcp_method and mcp_tool, and the cache-write column after them
    read = decode(orjson.dumps(old))
    assert read == (*row[:-4], None, None, 0, 7)
    assert record_of_inserted(read)["cache"] == "miss" and record_of_inserted(read)["mcp_method"] is None


def test_a_journal_line_written_before_records_kept_their_cache_writes_is_still_read() -> None:
    row, line = encode(7, rec(DAY1, "alice")._replace(input_tokens=700, cache_write_tokens=600, mcp_tool="echo"))
    assert line is not None
    assert record_of_inserted(row)["cache_write_tokens"] == 600
    old = orjson.loads(line)
    del old[-2]  # cache_write_tokens, which sits before the key
    read = decode(orjson.dumps(old))
    assert read == (*row[:-2], 0, 7)
    assert record_of_inserted(read)["cache_write_tokens"] == 0 and record_of_inserted(read)["mcp_tool"] == "echo"
