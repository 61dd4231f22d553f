"""The access log's lines (usage/access_log.py): one JSON line a call, saying no more of
what the client chose than the record keeps."""

from __future__ import annotations

import io

import orjson

from tollway.testing.harness import make_exchange
from tollway.usage.access_log import AccessLog
from tollway.usage.record import record_of
from tollway.usage.storable import MAX_TEXT


def test_a_clients_huge_model_name_and_request_id_are_cut_to_what_the_record_keeps() -> None:
    out = io.StringIO()
    log = AccessLog(out)
    ex = make_exchange("POST", "/v1/chat/completions")
    ex.model_requested = "m" * 3_000_000
    ex.request_id = "r" * 10_000
    ex.status = 200
    log.add(record_of(ex))
    log.add(record_of(make_exchange("POST", "/v1/chat/completions")))
    log.flush()
    long_line, short_line = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert long_line["model"] == "m" * MAX_TEXT and long_line["request_id"] == "r" * MAX_TEXT
    assert long_line["status"] == 200 and short_line["model"] is None
