"""Translation drops no request field silently (SPEC §9), field by field, for every
direction a request is translated: chat → Anthropic, chat → Gemini, Anthropic messages →
chat, Responses → chat. Each field the official SDKs can send, and each the codec names,
is listed in that direction's table in docs/providers.md; each that has no equivalent is
refused naming it when it asks for something, and each the codec does not know is
refused naming it whatever its value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from anthropic.types import message_create_params
from openai.types.chat import completion_create_params
from openai.types.responses import response_create_params

from tollway.protocols.anthropic import request_from_pivot as to_claude
from tollway.protocols.anthropic import request_to_pivot as from_claude
from tollway.protocols.codec import TranslationError
from tollway.protocols.gemini import request as to_gemini
from tollway.protocols.registry import codec_for
from tollway.protocols.responses import request as from_responses

DOCS = (Path(__file__).resolve().parents[3] / "docs" / "providers.md").read_text()
USER = [{"role": "user", "content": "hi"}]


def _sdk_fields(params: Any) -> set[str]:
    """The request fields an SDK's ``…CreateParamsBase`` TypedDict names."""
    return {name for cls in params.__mro__ for name in getattr(cls, "__annotations__", {})}


def _section(start: str, end: str) -> str:
    return DOCS[DOCS.index(start) : DOCS.index(end, DOCS.index(start))]


class Direction(NamedTuple):
    sdk_fields: set[str]
    known: frozenset[str]  # mapped, kept or dropped by the codec, each documented
    no_equivalent: dict[str, tuple[object, ...]]  # refused when asking for something
    table: str  # the docs' section for this direction
    translate: Callable[[dict[str, Any]], Any]
    base: dict[str, Any]  # a request that translates


def _from_chat(module: Any, protocol: str, table: str) -> Direction:
    """Chat (the pivot) → ``protocol``, whose codec module declares its fields alike."""
    return Direction(
        _sdk_fields(completion_create_params.CompletionCreateParamsBase),
        module._MAPPED | module._DROPPED,
        module._NO_EQUIVALENT,
        table,
        codec_for(protocol).request_from_pivot,
        {"model": "any-model", "messages": USER},
    )


DIRECTIONS = {
    "chat-to-anthropic": _from_chat(
        to_claude,
        "anthropic",
        _section("### OpenAI chat → Anthropic messages", "### Anthropic messages → OpenAI chat"),
    ),
    "chat-to-gemini": _from_chat(
        to_gemini, "gemini", _section("### OpenAI chat → Gemini generateContent", "### Answers")
    ),
    "anthropic-to-chat": Direction(
        _sdk_fields(message_create_params.MessageCreateParamsBase),
        from_claude._MAPPED | from_claude._DROPPED,
        {},
        _section("### Anthropic messages → OpenAI chat", "### OpenAI chat → Gemini generateContent"),
        codec_for("anthropic").request_to_pivot,
        {"model": "claude-x", "max_tokens": 16, "messages": USER},
    ),
    "responses-to-chat": Direction(
        _sdk_fields(response_create_params.ResponseCreateParamsBase),
        from_responses._KNOWN,
        {},
        _section("The Responses API (`POST /v1/responses`)", "Audio transcriptions"),
        from_responses.to_pivot,
        {"model": "claude-x", "input": "hi"},
    ),
}
# A value that asks for something, for each field that may have no equivalent.
ASKING: dict[str, Any] = {
    "logprobs": True, "top_logprobs": 3, "logit_bias": {"50256": -100}, "frequency_penalty": 0.5,
    "presence_penalty": 0.5, "verbosity": "high", "modalities": ["text", "audio"], "audio": {"voice": "alloy"},
    "web_search_options": {}, "moderation": {"model": "omni-moderation-latest"}, "functions": [{"name": "f"}],
    "function_call": "auto", "parallel_tool_calls": False, "thinking": {"type": "enabled", "budget_tokens": 2048},
}  # fmt: skip


def _named(field: str) -> str:
    return rf"\b{re.escape(field)}\b"


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_the_docs_table_names_every_request_field(direction: str) -> None:
    d = DIRECTIONS[direction]
    fields = d.sdk_fields | d.known | set(d.no_equivalent)
    # Named as `field`, or with its value or a member (`field: …`, `field.member`).
    unnamed = sorted(f for f in fields if re.search(rf"`{re.escape(f)}[`.:]", d.table) is None)
    assert unnamed == [], f"docs/providers.md does not say what becomes of these {direction} fields"


@pytest.mark.parametrize(
    ("direction", "field"),
    [(d, f) for d, spec in DIRECTIONS.items() for f in sorted(spec.no_equivalent)],
)
def test_a_field_without_equivalent_is_refused_naming_it(direction: str, field: str) -> None:
    d = DIRECTIONS[direction]
    with pytest.raises(TranslationError, match=_named(field)):
        d.translate({**d.base, field: ASKING[field]})
    for nothing in d.no_equivalent[field]:  # a value that asks for nothing passes
        d.translate({**d.base, field: nothing})


@pytest.mark.parametrize(
    ("direction", "field"),
    [(d, f) for d, spec in DIRECTIONS.items() for f in sorted(spec.sdk_fields - spec.known - set(spec.no_equivalent))]
    + [(d, "a_field_from_next_year") for d in DIRECTIONS],
)
def test_a_field_the_codec_does_not_know_is_refused_naming_it(direction: str, field: str) -> None:
    d = DIRECTIONS[direction]
    with pytest.raises(TranslationError, match=_named(field)):
        d.translate({**d.base, field: {"enabled": True}})
