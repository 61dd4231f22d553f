"""Chat chunks → the Responses event sequence (``protocols.responses.stream``)."""

from __future__ import annotations

from typing import Any

import orjson

from tollway.protocols import thinking_blocks
from tollway.protocols.responses.stream import ResponsesStreamWriter


def _run(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    writer = ResponsesStreamWriter({"model": "m"})
    events = [e for chunk in chunks for e in writer.feed(chunk)] + writer.end()
    data = [orjson.loads(e.data) for e in events]
    assert [e.event for e in events] == [d["type"] for d in data]
    assert [d["sequence_number"] for d in data] == list(range(len(data)))
    return data


def test_text_then_two_calls_is_the_event_sequence_the_sdk_assembles() -> None:
    data = _run(
        [
            {"id": "s1", "model": "claude", "choices": [{"index": 0, "delta": {"content": "Hi"}}]},
            {"id": "s1", "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"a":'}}]}}]},
            {"id": "s1", "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": "1}"}},
                {"index": 1, "id": "c2", "function": {"name": "g", "arguments": "{}"}}]},
                "finish_reason": "tool_calls"}]},
            {"id": "s1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
        ]
    )  # fmt: skip
    assert [(d["type"], d.get("output_index")) for d in data] == [
        ("response.created", None),
        ("response.in_progress", None),
        ("response.output_item.added", 0),
        ("response.content_part.added", 0),
        ("response.output_text.delta", 0),
        ("response.output_text.done", 0),
        ("response.content_part.done", 0),
        ("response.output_item.done", 0),
        ("response.output_item.added", 1),
        ("response.function_call_arguments.delta", 1),
        ("response.function_call_arguments.delta", 1),
        # One item open at a time, as OpenAI streams them: the first call is done before
        # the second is added (a client may run each tool as its item is done).
        ("response.function_call_arguments.done", 1),
        ("response.output_item.done", 1),
        ("response.output_item.added", 2),
        ("response.function_call_arguments.delta", 2),
        ("response.function_call_arguments.done", 2),
        ("response.output_item.done", 2),
        ("response.completed", None),
    ]
    final = data[-1]["response"]
    assert final["id"] == data[0]["response"]["id"] == "resp_tw_s1" and final["model"] == "claude"
    assert final["output"][0]["content"][0]["text"] == "Hi"
    assert [(i["call_id"], i["arguments"]) for i in final["output"][1:]] == [("c1", '{"a":1}'), ("c2", "{}")]
    assert final["usage"]["output_tokens"] == 4 and final["status"] == "completed"


def test_a_fragment_of_a_call_done_already_reaches_the_final_response() -> None:
    """A provider that interleaves its calls' fragments: the earlier item was closed when
    the next opened, and the completed response holds every fragment of it."""
    data = _run(
        [
            {"id": "s4", "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"a":'}},
                {"index": 1, "id": "c2", "function": {"name": "g", "arguments": "{}"}},
                {"index": 0, "function": {"arguments": "1}"}}]}, "finish_reason": "tool_calls"}]},
        ]
    )  # fmt: skip
    assert [d["type"] for d in data].count("response.output_item.done") == 2
    final = data[-1]["response"]
    assert [(i["call_id"], i["arguments"]) for i in final["output"]] == [("c1", '{"a":1}'), ("c2", "{}")]


def test_an_output_limit_ends_with_response_incomplete() -> None:
    data = _run([{"id": "s2", "choices": [{"index": 0, "delta": {"content": "Par"}, "finish_reason": "length"}]}])
    assert data[-1]["type"] == "response.incomplete"
    assert data[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    # The message the limit cut is incomplete too, where it is done and in the response.
    done = [d["item"] for d in data if d["type"] == "response.output_item.done"]
    assert [i["status"] for i in done] == ["incomplete"] == [i["status"] for i in data[-1]["response"]["output"]]


def test_a_provider_error_midway_is_an_error_event_then_response_failed() -> None:
    data = _run(
        [
            {"id": "s3", "choices": [{"index": 0, "delta": {"content": "Par"}}]},
            {"error": {"message": "Overloaded", "type": "overloaded_error", "code": None}},
            {"id": "s3", "choices": [{"index": 0, "delta": {"content": "is"}}]},
        ]
    )
    assert [d["type"] for d in data[-2:]] == ["error", "response.failed"]
    assert (data[-2]["code"], data[-2]["message"]) == ("overloaded_error", "Overloaded")
    failed = data[-1]["response"]
    assert failed["status"] == "failed" and failed["error"] == {"code": "overloaded_error", "message": "Overloaded"}
    assert failed["output"][0]["status"] == "incomplete" and failed["output"][0]["content"][0]["text"] == "Par"


def test_whole_thinking_blocks_are_a_reasoning_item_before_the_text() -> None:
    blocks = [{"type": "thinking", "thinking": "Hm.", "signature": "sig"}]
    data = _run(
        [
            {"id": "s2", "choices": [{"index": 0, "delta": {"reasoning_content": "Hm."}}]},
            {"id": "s2", "choices": [{"index": 0, "delta": {"thinking_blocks": blocks}}]},
            {"id": "s2", "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]},
        ]
    )
    assert [(d["type"], d.get("output_index")) for d in data][2:4] == [
        ("response.output_item.added", 0),
        ("response.output_item.done", 0),
    ]
    reasoning, message = data[-1]["response"]["output"]
    assert reasoning["type"] == "reasoning" and reasoning["summary"] == []
    assert thinking_blocks.unseal(reasoning["encrypted_content"], "item") == blocks
    assert message["content"][0]["text"] == "Hi"


def test_thinking_blocks_streamed_one_after_another_are_one_reasoning_item_as_in_a_whole_answer() -> None:
    """Claude streams each block apart (a thinking block, then a redacted one); a
    Responses client must get them in one item, as the whole answer has them, to send
    them back as one turn's thinking."""
    thinking = {"type": "thinking", "thinking": "Hm.", "signature": "sig"}
    redacted = {"type": "redacted_thinking", "data": "opaque"}
    data = _run(
        [
            {"id": "s4", "choices": [{"index": 0, "delta": {"thinking_blocks": [thinking]}}]},
            {"id": "s4", "choices": [{"index": 0, "delta": {"thinking_blocks": [redacted]}}]},
            {"id": "s4", "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}]}}]},
            {"id": "s4", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        ]
    )  # fmt: skip
    assert [(d["type"], d.get("output_index")) for d in data][2:5] == [
        ("response.output_item.added", 0),
        ("response.output_item.done", 0),
        ("response.output_item.added", 1),
    ]
    done = data[3]["item"]
    assert thinking_blocks.unseal(done["encrypted_content"], "item") == [thinking, redacted]
    reasoning, call = data[-1]["response"]["output"]
    assert reasoning == done and call["call_id"] == "c1"


def test_a_stream_that_fails_keeps_its_open_reasoning_item() -> None:
    blocks = [{"type": "thinking", "thinking": "Hm.", "signature": "sig"}]
    data = _run(
        [
            {"id": "s5", "choices": [{"index": 0, "delta": {"thinking_blocks": blocks}}]},
            {"error": {"message": "Overloaded", "type": "overloaded_error", "code": None}},
        ]
    )
    (reasoning,) = data[-1]["response"]["output"]
    assert thinking_blocks.unseal(reasoning["encrypted_content"], "item") == blocks
