"""Which parts of each API's request ai-data-masking masks (masking/bodies.py), and its
JSONPath dialect. No sockets."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tollway.masking.bodies import map_path, map_request, parse_jsonpath


def upper(text: str) -> str:
    return text.upper()


def test_chat_masks_contents_parts_and_tool_arguments_only() -> None:
    image = {"type": "image_url", "image_url": {"url": "u"}}
    body: dict[str, Any] = {
        "model": "gpt-4o",
        "temperature": 0.5,
        "messages": [
            {"role": "system", "content": "sys"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "part"}, image],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{}a"}}],
            },
        ],
    }
    before = orjson.dumps(body)
    out = map_request("chat", body, upper)
    assert orjson.dumps(body) == before, "the given body is never edited"
    assert out["model"] == "gpt-4o" and out["temperature"] == 0.5
    assert out["messages"][0]["content"] == "SYS"
    assert out["messages"][1]["content"] == [{"type": "text", "text": "PART"}, image]
    assert out["messages"][1]["content"][1] is image, "unchanged parts are shared, not copied"
    assert out["messages"][2]["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}A"}


def test_completions_embeddings_and_anthropic() -> None:
    assert map_request("completions", {"model": "m", "prompt": ["a", 1]}, upper)["prompt"] == ["A", 1]
    assert map_request("embeddings", {"model": "m", "input": "e"}, upper)["input"] == "E"
    body = {
        "model": "claude",
        "system": [{"type": "text", "text": "s"}],
        "messages": [
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "sig"},
                                              {"type": "tool_use", "id": "x", "name": "n", "input": {"to": "v"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x", "content": "r"}]},
        ],
    }  # fmt: skip
    out = map_request("messages", body, upper)
    assert out["system"] == [{"type": "text", "text": "S"}] and out["model"] == "claude"
    assert out["messages"][0]["content"] == "U"
    assert out["messages"][1]["content"][0] == {"type": "thinking", "thinking": "t", "signature": "sig"}
    assert out["messages"][1]["content"][1]["input"] == {"to": "V"}
    assert out["messages"][2]["content"][0]["content"] == "R"


def test_jsonpath_dialect() -> None:
    body = {"a": {"b": [{"c": "x"}, {"c": "y"}]}, "k": ["p", "q"], "n": 1}
    assert map_path(body, parse_jsonpath("$.a.b[*].c"), upper)["a"]["b"] == [{"c": "X"}, {"c": "Y"}]
    assert map_path(body, parse_jsonpath("$['k'][-1]"), upper)["k"] == ["p", "Q"]
    assert map_path(body, parse_jsonpath("$.*"), upper) == body  # only strings are touched
    with pytest.raises(ValueError, match="unsupported"):
        parse_jsonpath("$..c")
