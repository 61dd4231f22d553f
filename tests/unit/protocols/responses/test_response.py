"""A chat completion → a ``response`` object (``protocols.responses.response``)."""

from __future__ import annotations

from tollway.protocols import thinking_blocks
from tollway.protocols.responses.response import from_pivot

REQUEST = {"model": "m", "input": "x", "instructions": "Be brief.", "temperature": 0.5, "metadata": {"k": "v"}}


def test_text_and_calls_become_output_items_with_the_usage_details() -> None:
    chat = {
        "id": "x1", "model": "claude-x", "created": 5,
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Checking.",
                     "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 10},
                  "completion_tokens_details": {"reasoning_tokens": 3}},
    }  # fmt: skip
    response = from_pivot(chat, REQUEST)
    assert (response["id"], response["object"], response["status"], response["model"]) == (
        "resp_tw_x1",  # (marked as made here: fetched from no provider)
        "response",
        "completed",
        "claude-x",
    )
    message, call = response["output"]
    assert message["type"] == "message" and message["content"][0]["text"] == "Checking."
    assert (call["type"], call["call_id"], call["name"], call["arguments"]) == ("function_call", "c1", "f", "{}")
    assert response["usage"] == {
        "input_tokens": 30,
        # Both details always: the OpenAI SDK's ``ResponseUsage`` requires them.
        "input_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 0},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 3},
        "total_tokens": 37,
    }
    # The request's settings are echoed; nothing is stored.
    assert (response["instructions"], response["temperature"], response["metadata"], response["store"]) == (
        "Be brief.",
        0.5,
        {"k": "v"},
        False,
    )


def test_an_answer_cut_at_the_output_limit_is_incomplete() -> None:
    chat = {"id": "x2", "model": "m", "choices": [{"finish_reason": "length", "message": {"content": "Par"}}]}
    response = from_pivot(chat, REQUEST)
    assert (response["status"], response["incomplete_details"]) == ("incomplete", {"reason": "max_output_tokens"})
    assert response["output"][0]["status"] == "incomplete"  # the message it cut, as OpenAI marks it


def test_claudes_signed_thinking_is_a_reasoning_item_first_sealed_in_its_encrypted_content() -> None:
    blocks = [{"type": "thinking", "thinking": "Hm.", "signature": "sig"}, {"type": "redacted_thinking", "data": "d"}]
    message = {"role": "assistant", "content": "Hi.", "reasoning_content": "Hm.", "thinking_blocks": blocks}
    chat = {"id": "x2", "model": "claude-x", "created": 5,
            "choices": [{"index": 0, "finish_reason": "stop", "message": message}]}  # fmt: skip
    reasoning, item = from_pivot(chat, REQUEST)["output"]
    assert reasoning == {"type": "reasoning", "id": "rs_x2", "summary": [],
                         "encrypted_content": thinking_blocks.seal(blocks)}  # fmt: skip
    assert item["content"][0]["text"] == "Hi."
