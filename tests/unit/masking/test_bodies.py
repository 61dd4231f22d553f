"""Which parts of a request ai-data-masking masks (masking/bodies.py: every string but
identifiers, enumerations, binary payloads and signed blocks), and its JSONPath dialect.
No sockets."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tollway.masking.bodies import map_all_but_model, map_answer, map_path, map_request, parse_jsonpath


def upper(text: str) -> str:
    return text.upper()


def test_chat_masks_contents_parts_and_tool_calls_only() -> None:
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
    assert out["messages"][2]["tool_calls"][0]["function"] == {"name": "F", "arguments": "{}A"}


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
    assert out["messages"][1]["content"][1]["input"] == {"TO": "V"}  # the client's own data, names and all
    assert out["messages"][2]["content"][0]["content"] == "R"


def test_jsonpath_dialect() -> None:
    body = {"a": {"b": [{"c": "x"}, {"c": "y"}]}, "k": ["p", "q"], "n": 1}
    assert map_path(body, parse_jsonpath("$.a.b[*].c"), upper)["a"]["b"] == [{"c": "X"}, {"c": "Y"}]
    assert map_path(body, parse_jsonpath("$['k'][-1]"), upper)["k"] == ["p", "Q"]
    assert map_path(body, parse_jsonpath("$.*"), upper) == body  # only strings are touched
    with pytest.raises(ValueError, match="unsupported"):
        parse_jsonpath("$..c")


def test_every_api_that_carries_prompt_text_has_its_texts_mapped_and_nothing_else() -> None:
    schema = {"type": "object", "description": "d", "properties": {"to": {"type": "string", "description": "p"}}}
    chat_tool = {"type": "function", "function": {"name": "n", "description": "d", "parameters": schema}}
    bodies: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        "chat": (
            {"model": "m", "messages": [{"role": "assistant", "content": [{"type": "refusal", "refusal": "r"}]}],
             "tools": [chat_tool], "functions": [{"name": "n", "description": "d"}], "user": "u", "seed": 1},
            {"model": "m", "messages": [{"role": "assistant", "content": [{"type": "refusal", "refusal": "R"}]}],
             "tools": [{"type": "function", "function": {"name": "N", "description": "D", "parameters": {
                 "type": "OBJECT", "description": "D",  # (a schema is the client's content: all read)
                 "properties": {"TO": {"type": "STRING", "description": "P"}}}}}],
             "functions": [{"name": "N", "description": "D"}], "user": "U", "seed": 1},
        ),
        "completions": (
            {"model": "m", "prompt": "p", "suffix": "s", "user": "u", "logit_bias": {"50256": -100}},
            {"model": "m", "prompt": "P", "suffix": "S", "user": "U", "logit_bias": {"50256": -100}},
        ),
        "embeddings": (
            {"model": "m", "input": ["a", [1, 2]], "encoding_format": "float"},
            {"model": "m", "input": ["A", [1, 2]], "encoding_format": "float"},
        ),
        "count_tokens": (
            {"model": "m", "system": "s", "messages": [{"role": "user", "content": "c"}],
             "tools": [{"name": "n", "description": "d", "input_schema": {"type": "object"}}]},
            {"model": "m", "system": "S", "messages": [{"role": "user", "content": "C"}],
             "tools": [{"name": "N", "description": "D", "input_schema": {"type": "OBJECT"}}]},
        ),
        "responses": (
            {"model": "m", "instructions": "i", "user": "u", "store": False, "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "t"},
                                             {"type": "input_image", "image_url": "data:x"}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "o"}]},
                {"type": "function_call", "call_id": "c1", "name": "n", "arguments": "{}a"},
                {"type": "function_call_output", "call_id": "c1", "output": "out"},
                {"type": "reasoning", "id": "r", "summary": [{"type": "summary_text", "text": "keep"}]},
             ], "tools": [{"type": "function", "name": "n", "description": "d", "parameters": {"type": "object"}}]},
            {"model": "m", "instructions": "I", "user": "U", "store": False, "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "T"},
                                             {"type": "input_image", "image_url": "data:x"}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "O"}]},
                {"type": "function_call", "call_id": "c1", "name": "N", "arguments": "{}A"},
                {"type": "function_call_output", "call_id": "c1", "output": "OUT"},
                {"type": "reasoning", "id": "r", "summary": [{"type": "summary_text", "text": "keep"}]},
             ], "tools": [{"type": "function", "name": "N", "description": "D", "parameters": {"type": "OBJECT"}}]},
        ),
    }  # fmt: skip
    for api, (body, expected) in bodies.items():
        assert map_request(api, body, upper) == expected, api  # type: ignore[arg-type]
    assert map_request("responses", {"model": "m", "input": "hi"}, upper) == {"model": "m", "input": "HI"}


def test_anthropic_documents_search_results_and_tool_results() -> None:
    document = {
        "type": "document",
        "title": "t",
        "context": "c",
        "source": {"type": "text", "media_type": "text/plain", "data": "d"},
    }
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}}
    content_doc = {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "x"}]}}
    search = {"type": "search_result", "source": "https://s", "title": "t", "content": [{"type": "text", "text": "s"}]}
    result = {"type": "tool_result", "tool_use_id": "x", "content": [{"type": "text", "text": "r"}, content_doc]}
    body = {
        "model": "m",
        "metadata": {"user_id": "u"},
        "messages": [{"role": "user", "content": [document, pdf, content_doc, search, result]}],
    }
    out = map_request("messages", body, upper)
    blocks = out["messages"][0]["content"]
    assert blocks[0] == {
        "type": "document",
        "title": "T",
        "context": "C",
        "source": {"type": "text", "media_type": "text/plain", "data": "D"},
    }
    assert blocks[1] is pdf
    assert blocks[2]["source"]["content"] == [{"type": "text", "text": "X"}]
    assert blocks[3] == {**search, "source": "HTTPS://S", "title": "T", "content": [{"type": "text", "text": "S"}]}
    assert blocks[4]["content"][0] == {"type": "text", "text": "R"}
    assert blocks[4]["content"][1]["source"]["content"] == [{"type": "text", "text": "X"}]
    assert out["metadata"] == {"USER_ID": "U"} and out["model"] == "m"  # fmt: skip


def deep(depth: int, leaf: Any) -> Any:
    value = leaf
    for i in range(depth):
        value = {"k": [value, i]}
    return value


def test_values_of_any_depth_are_walked_without_recursion() -> None:
    body = {"model": "m", "messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "x", "name": "n", "input": deep(10_000, "v")}]}
    ]}  # fmt: skip
    out = map_request("messages", body, upper)
    value = out["messages"][0]["content"][0]["input"]
    for _ in range(10_000):
        value = value["K"][0]  # (a tool's input is the client's data: its names are read too)
    assert value == "V"
    answer = deep(10_000, {"type": "thinking", "thinking": "keep"})
    assert map_answer(answer, upper) is answer, "nothing to change: the same value back"
    out_answer = map_answer({"a": deep(10_000, "x")}, upper)
    assert out_answer["a"]["k"][1] == 9_999
    assert map_all_but_model({"model": "m", "x": deep(10_000, "y")}, upper)["model"] == "m"


def test_answers_keep_signed_thinking_and_reasoning_as_they_are() -> None:
    thinking = {"type": "thinking", "thinking": "t", "signature": "s"}
    reasoning = {"type": "reasoning", "id": "r", "summary": [{"type": "summary_text", "text": "t"}]}
    message = {"type": "message", "content": [{"type": "output_text", "text": "t", "annotations": []}]}
    answer = {"object": "response", "output": [reasoning, message], "content": [thinking]}
    out = map_answer(answer, upper)
    assert out["output"][0] is reasoning and out["content"][0] is thinking
    assert out["output"][1]["content"][0]["text"] == "T"
    assert out["object"] == "RESPONSE", "every other string is restored, keys are not"


def test_text_in_any_field_or_shape_is_seen_and_identifiers_and_binary_data_are_not() -> None:
    # Fields a list of prompt fields missed (found by a red-team run), shapes no API
    # documents, and what must reach the provider exactly as sent.
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR123", "detail": "low"}}
    audio = {"type": "input_audio", "input_audio": {"data": "UklGR123", "format": "wav"}}
    chat = {
        "model": "gpt-4o",
        "messages": [
            {"role": "user", "name": "n",
             "content": [{"type": "text", "text": "t"}, image, audio, {"text": "untyped"}]},
            {"role": "assistant", "refusal": "r", "tool_calls": [{"id": "call_123", "type": "function",
                                                                  "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_123", "content": "out"},
        ],
        "prediction": {"type": "content", "content": "predicted"},
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "description": "d",
                                                                   "schema": {"title": "ti", "enum": ["e"]}}},
        "tools": [{"type": "custom", "custom": {"name": "c", "description": "cd"}}],
        "reasoning_effort": "low",
        "modalities": ["text"],
    }  # fmt: skip
    out = map_request("chat", chat, upper)
    assert out["model"] == "gpt-4o" and out["reasoning_effort"] == "low" and out["modalities"] == ["text"]
    user, assistant, tool = out["messages"]
    assert (user["role"], user["name"]) == ("user", "N")
    assert user["content"] == [{"type": "text", "text": "T"}, image, audio, {"text": "UNTYPED"}]
    assert assistant["refusal"] == "R" and assistant["tool_calls"][0]["id"] == "call_123"
    assert assistant["tool_calls"][0]["function"]["name"] == "F"
    assert tool == {"role": "tool", "tool_call_id": "call_123", "content": "OUT"}
    assert out["prediction"] == {"type": "content", "content": "PREDICTED"}
    schema = out["response_format"]["json_schema"]
    assert (schema["description"], schema["schema"]) == ("D", {"title": "TI", "enum": ["E"]})
    assert out["tools"] == [{"type": "custom", "custom": {"name": "C", "description": "CD"}}]
    # Shapes no API has still have their text seen.
    odd = map_request("chat", {"model": "m", "messages": {"role": "user", "content": "x"}}, upper)
    assert odd["messages"] == {"role": "user", "content": "X"}
    anthropic = {
        "model": "claude",
        "messages": [{"role": "assistant", "content": [
            {"type": "text", "text": "a", "citations": [{"type": "char_location", "cited_text": "c"}]},
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}},
            {"type": "mcp_tool_result", "tool_use_id": "mcptoolu_1", "content": [{"type": "text", "text": "m"}]},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR123"}},
        ]}],
        "mcp_servers": [{"type": "url", "url": "https://mcp.example/sse", "name": "srv"}],
    }  # fmt: skip
    blocks = map_request("messages", anthropic, upper)["messages"][0]["content"]
    assert blocks[0]["citations"] == [{"type": "char_location", "cited_text": "C"}]
    assert blocks[1]["input"] == {"QUERY": "Q"} and blocks[1]["id"] == "srvtoolu_1"
    assert blocks[2] == {
        "type": "mcp_tool_result",
        "tool_use_id": "mcptoolu_1",
        "content": [{"type": "text", "text": "M"}],
    }
    assert blocks[3] is anthropic["messages"][0]["content"][3]  # type: ignore[index]
    servers = map_request("messages", anthropic, upper)["mcp_servers"]
    assert servers == [{"type": "url", "url": "https://mcp.example/sse", "name": "SRV"}]
    responses = {"model": "m", "input": "i", "text": {"format": {"type": "json_schema", "name": "n",
                 "schema": {"description": "sd"}}}, "prompt": {"id": "pmpt_1", "variables": {"city": "v"}}}  # fmt: skip
    out = map_request("responses", responses, upper)
    assert out["text"]["format"]["schema"] == {"description": "SD"}
    assert out["prompt"] == {"id": "pmpt_1", "variables": {"city": "V"}}


@pytest.mark.parametrize("kind", [{}, [], 1, None, True])
def test_a_type_that_is_no_string_is_no_reason_to_fail_or_to_skip_a_text(kind: Any) -> None:
    """A client's ``type`` may be any JSON value: an unhashable one once made the plugin
    fail (and, failing open, send the text unmasked)."""
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": kind, "text": "b"}]}],
    }
    masked = map_request("chat", body, upper)
    assert masked["messages"][0]["content"] == [{"type": "text", "text": "A"}, {"type": kind, "text": "B"}]
    responses = map_request(
        "responses", {"model": "m", "input": [{"type": kind}, {"role": "user", "content": "c"}]}, upper
    )
    assert responses["input"][1]["content"] == "C"
    assert map_answer({"content": [{"type": kind, "text": "d"}]}, upper) == {"content": [{"type": kind, "text": "D"}]}


def test_identifier_names_hide_only_identifiers_not_the_texts_and_names_under_them() -> None:
    """A red-team run: a JSON schema property named ``url``, ``id`` or ``status``, a
    tool call's input field of those names, metadata, and an object saying ``"type":
    "base64"`` anywhere used to carry their whole content past the masking, and member
    names (a schema's properties, metadata keys) were never read."""

    def mark(text: str) -> str:
        return text.replace("bob@x.io", "[EMAIL]")

    prop = {"type": "string", "description": "bob@x.io"}
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {
                "type": "object",
                "properties": {
                    "url": prop,
                    "id": prop,
                    "status": prop,
                    "type": prop,
                    "detail": prop,
                    "bob@x.io": {"type": "string"},
                },
            },
        },
    }
    signed = {"type": "thinking", "thinking": "bob@x.io", "signature": "sig"}
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "bob@x.io"}}
    body = {
        "model": "m",
        "metadata": {"id": "bob@x.io", "bob@x.io": "v"},
        "tools": [tool],
        "messages": [
            {"role": "assistant", "content": [signed, image, {"type": "tool_use", "id": "toolu_1", "name": "n",
             "input": {"url": "https://h/?e=bob@x.io", "status": "bob@x.io", "id": "bob@x.io",
                       "a": {"type": "base64", "note": "bob@x.io"}, "b": [signed], "c": {"x": signed}}}]},
            {"role": "user", "content": [{"type": "text", "text": "t", "extra": {"type": "base64", "note": "bob@x.io",
                                                                                  "data": "AAAA"}}]},
        ],
    }  # fmt: skip
    out = map_request("messages", body, mark)
    assert b"bob@x.io" not in orjson.dumps(
        {**out, "messages": [{**out["messages"][0], "content": out["messages"][0]["content"][2:]},
                             out["messages"][1]]}
    )  # fmt: skip
    properties = out["tools"][0]["function"]["parameters"]["properties"]
    assert set(properties) == {"url", "id", "status", "type", "detail", "[EMAIL]"}
    assert properties["url"] == {"type": "string", "description": "[EMAIL]"}
    assert out["metadata"] == {"id": "[EMAIL]", "[EMAIL]": "v"}
    # Where the protocol has them, signed blocks and binary data are still left as they are.
    blocks = out["messages"][0]["content"]
    assert blocks[0] is signed and blocks[1] is image
    assert out["messages"][1]["content"][0]["extra"] == {"type": "base64", "note": "[EMAIL]", "data": "AAAA"}
    # An answer's tool call using a masked name as its input's member gets it back.
    answer = {"content": [{"type": "tool_use", "id": "t", "name": "n", "input": {"[EMAIL]": "[EMAIL]"}}]}
    restored = map_answer(answer, lambda t: t.replace("[EMAIL]", "bob@x.io"))
    assert restored["content"][0]["input"] == {"bob@x.io": "bob@x.io"}


def test_signed_blocks_are_kept_only_where_the_protocol_has_them() -> None:
    """A second red-team run: a ``"type": "thinking"`` object anywhere in a list (a tool
    schema's ``examples``, ``system``, a user message, a tool result) was kept whole, so
    its text passed unread; so did a schema's ``format`` and a base64 ``default``."""

    def mark(text: str) -> str:
        return text.replace("bob@x.io", "[EMAIL]")

    signed = {"type": "thinking", "thinking": "bob@x.io", "signature": "sig"}
    reasoning = {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "bob@x.io"}]}
    schema = {"type": "object", "properties": {"a": {"type": "string", "format": "bob@x.io", "examples": [signed],
              "default": {"type": "base64", "data": "bob@x.io"}}}}  # fmt: skip
    body = {
        "model": "m",
        "system": [signed],
        "tools": [{"name": "t", "input_schema": schema}],
        "messages": [
            {"role": "user", "content": [signed]},
            {"role": "assistant", "content": [signed]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x", "content": [signed]}]},
        ],
    }
    out = map_request("messages", body, mark)
    assert out["messages"][1]["content"][0] is signed  # an assistant's thinking, as signed
    rest = {**out, "messages": [out["messages"][0], out["messages"][2]]}
    assert b"bob@x.io" not in orjson.dumps(rest)
    responses = {"model": "m", "input": [reasoning, {"role": "user", "content": [reasoning]}]}
    items = map_request("responses", responses, mark)["input"]
    assert items[0] is reasoning and b"bob@x.io" not in orjson.dumps(items[1])


def test_a_chat_clients_thinking_blocks_are_kept_as_signed() -> None:
    """Claude's signed thinking, sent back by an OpenAI chat client in an assistant
    message's ``thinking_blocks``: a changed block is refused by the provider."""
    signed = {"type": "thinking", "thinking": "mail bob@x.io", "signature": "sig"}
    redacted = {"type": "redacted_thinking", "data": "bob@x.io"}
    assistant = {"role": "assistant", "content": "ok", "thinking_blocks": [signed, redacted]}
    body = {"model": "m", "messages": [{"role": "user", "content": "bob@x.io"}, assistant]}
    out = map_request("chat", body, lambda t: t.replace("bob@x.io", "[EMAIL]"))
    assert out["messages"][0]["content"] == "[EMAIL]"
    kept = out["messages"][1]["thinking_blocks"]
    assert kept[0] is signed and kept[1] is redacted
