"""Which reads of a stored object record the usage its answer shows (proxy.stored_reads)."""

from __future__ import annotations

from typing import Any

import pytest

from tollway.proxy.stored_reads import StoredReads, told_later
from tollway.state.memory import MemoryStateStore
from tollway.testing.harness import make_exchange

_USAGE = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}


def _run(kind: str, status: str = "completed", **more: Any) -> dict[str, Any]:
    return {"id": f"{kind}_1", "object": kind, "status": status, "model": "gpt-4.1-mini", "usage": _USAGE, **more}


@pytest.mark.parametrize(
    ("answer", "counted"),
    [
        (_run("response", background=True), True),
        (_run("response", background=False), False),  # its own call's record has its tokens
        (_run("response"), False),
        (_run("response", "in_progress", background=True), False),  # not finished: no final usage
        (_run("response", "queued", background=True, usage=None), False),
        (_run("batch"), True),
        (_run("batch", "in_progress"), False),
        ({"object": "list", "data": []}, False),
    ],
)
async def test_only_the_first_read_of_a_finished_run_of_the_providers_own_counts(
    answer: dict[str, Any], counted: bool
) -> None:
    reads = StoredReads(MemoryStateStore())
    first = make_exchange("GET", "/v1/x")
    assert await reads.first_read(first, answer) is counted
    assert await reads.first_read(make_exchange("GET", "/v1/x"), answer) is False  # once
    # A response's model prices its tokens; a batch's discount is not in the price table.
    priced = counted and answer["object"] == "response"
    assert first.model_upstream == ("gpt-4.1-mini" if priced else None)


def test_only_a_queued_background_answer_is_told_later() -> None:
    assert told_later(_run("response", "queued", background=True, usage=None))
    assert not told_later(_run("response", "completed", background=True))
    assert not told_later(_run("response", "queued", usage=None))
