"""The Anthropic Messages codec as a whole (protocols/anthropic/messages.py): requests there
and back keep their meaning; model lists and the API path, over the hand-written transcripts
in tests/fixtures/transcripts. No sockets."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.support.anthropic_support import to_claude
from tests.support.transcript_support import load
from tollway.protocols.registry import codec_for

A = codec_for("anthropic")


# ---- requests: round trips -----------------------------------------------------------


def _normal(chat_body: dict[str, Any]) -> dict[str, Any]:
    """A pivot request with content forms that mean the same made alike: text-only part
    lists as strings, tool arguments as objects, images without ``detail``."""
    out = copy.deepcopy(chat_body)
    for m in out["messages"]:
        content = m.get("content")
        if isinstance(content, list) and all(p.get("type") == "text" for p in content):
            m["content"] = "".join(p["text"] for p in content)
        elif isinstance(content, list):
            for p in content:
                if p.get("type") == "image_url":
                    p["image_url"] = {"url": p["image_url"]["url"]}
        for call in m.get("tool_calls") or ():
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    return out


@pytest.mark.parametrize("name", ["chat_text.request.json", "chat_tools.request.json"])
def test_pivot_to_anthropic_and_back_keeps_the_meaning(name: str) -> None:
    original = load("openai", name)
    got = _normal(A.request_to_pivot(to_claude(original)))
    expected = _normal(original)
    # Anthropic has one token limit (back as OpenAI's current name) and no stream
    # options; stream false is the default.
    limit = expected.pop("max_tokens", None)
    if limit is not None:
        expected["max_completion_tokens"] = limit
    expected.pop("stream_options", None)
    got.pop("stream_options", None)
    if expected.get("stream") is False:
        del expected["stream"]
    assert got == expected


@pytest.mark.parametrize("name", ["messages_text.request.json", "messages_tools.request.json"])
def test_anthropic_to_pivot_and_back_keeps_the_meaning(name: str) -> None:
    original = load("anthropic", name)
    back = to_claude(A.request_to_pivot(original))
    if isinstance(original["system"], list):  # blocks are joined; cache_control is dropped
        original["system"] = "\n".join(b["text"] for b in original["system"])
    for m in original["messages"]:
        for block in m["content"] if isinstance(m["content"], list) else ():
            if block["type"] == "tool_result" and isinstance(block["content"], list):
                block["content"] = "".join(b["text"] for b in block["content"])  # text-only: a string
    if not original.get("stream"):
        original.pop("stream", None)
    assert back == original


# ---- model lists and the API path ----------------------------------------------------


def test_model_ids() -> None:
    assert A.model_ids(load("anthropic", "models.json")) == ["claude-sonnet-4-20250514", "claude-3-5-haiku-20241022"]
    assert A.model_ids({"nope": 1}) == []


def test_api_path() -> None:
    assert A.api_path(False, "claude-x") == A.api_path(True, "claude-x")
    assert (A.api_path(True, "m").path, A.api_path(True, "m").query) == ("/messages", "")
