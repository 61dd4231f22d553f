"""Gemini's thought signatures folded into tool-call ids and back (``protocols.signed_ids``)."""

from __future__ import annotations

import copy
import re
from typing import Any

from tollway.protocols.signed_ids import FoldingWriter, fold, fold_id, unfold, unfold_id
from tollway.protocols.sse import SseEvent

SIGNATURE = "CiQB0e2Kb9a1QmVx+/w=="
SIGNED_CALL: dict[str, Any] = {
    "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"},
    "extra_content": {"google": {"thought_signature": SIGNATURE}},
}  # fmt: skip
PLAIN_CALL: dict[str, Any] = {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}


def test_an_id_carries_the_signature_exactly_within_anthropics_id_pattern() -> None:
    folded = fold_id("call_1", SIGNATURE)
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", folded) and folded.startswith("call_1")
    assert unfold_id(folded) == ("call_1", SIGNATURE)
    assert unfold_id("toolu_01D7FLrfh4GYq7yT1ULFeyMV") == ("toolu_01D7FLrfh4GYq7yT1ULFeyMV", None)
    assert unfold_id("call_1__tsig_!!") == ("call_1__tsig_!!", None)  # not one the gateway made


def test_an_answer_and_a_chunk_get_folded_ids_and_are_not_changed() -> None:
    message = {"role": "assistant", "tool_calls": [SIGNED_CALL, PLAIN_CALL]}
    completion = {"id": "c", "choices": [{"index": 0, "message": message}]}
    before = copy.deepcopy(completion)
    folded = fold(completion)
    assert completion == before
    ids = [c["id"] for c in folded["choices"][0]["message"]["tool_calls"]]
    assert ids == [fold_id("call_1", SIGNATURE), "call_2"]
    chunk = {"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, **SIGNED_CALL}]}}]}
    assert fold(chunk)["choices"][0]["delta"]["tool_calls"][0]["id"] == fold_id("call_1", SIGNATURE)
    usage_chunk = {"id": "c", "choices": [], "usage": {"prompt_tokens": 1}}
    assert fold(usage_chunk) is usage_chunk


def test_a_request_names_calls_by_their_own_ids_and_the_signature_goes_back_in_extra_content() -> None:
    folded = fold_id("call_1", SIGNATURE)
    chat = {"model": "m", "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [{**PLAIN_CALL, "id": folded}, PLAIN_CALL]},
        {"role": "tool", "tool_call_id": folded, "content": "18 C"},
    ]}  # fmt: skip
    before = copy.deepcopy(chat)
    unfolded = unfold(chat)
    assert chat == before
    own_call = {**PLAIN_CALL, "id": "call_1", "extra_content": SIGNED_CALL["extra_content"]}
    assert unfolded["messages"][1]["tool_calls"] == [own_call, PLAIN_CALL]
    assert unfolded["messages"][2]["tool_call_id"] == "call_1"
    plain = {"model": "m", "messages": [{"role": "assistant", "tool_calls": [PLAIN_CALL]}]}
    assert unfold(plain) is plain


def test_a_clients_own_extra_content_stands() -> None:
    own = {**SIGNED_CALL, "id": fold_id("call_1", "other")}
    chat = {"messages": [{"role": "assistant", "tool_calls": [own]}]}
    assert unfold(chat)["messages"][0]["tool_calls"][0] == SIGNED_CALL


class _Recorder:
    def __init__(self) -> None:
        self.chunks: list[dict[str, Any]] = []

    def feed(self, chunk: dict[str, Any]) -> list[SseEvent]:
        self.chunks.append(chunk)
        return []

    def end(self) -> list[SseEvent]:
        return []


def test_a_folding_writer_hands_on_folded_chunks() -> None:
    inner = _Recorder()
    writer = FoldingWriter(inner)
    writer.feed({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, **SIGNED_CALL}]}}]})
    assert writer.end() == []
    assert inner.chunks[0]["choices"][0]["delta"]["tool_calls"][0]["id"] == fold_id("call_1", SIGNATURE)
